'use strict'
// mail_pipeline_spool: the queue of mail_pipeline's Haraka.
//
// Every accepted message is written into a spool directory that the Python
// ingester reads. The client gets 250 only once the message and its .meta are
// on disk (fsynced and renamed into inbox/); if anything fails it gets 451 and
// no file is left behind, so the client keeps the message and retries.
//
// Spool protocol (the ingester relies on exactly this):
//   <spool>/{inbox,processed,failed,unmatched,tmp}/   created at start
//   tmp/<id>.eml.tmp  -> fsync -> rename -> inbox/<id>.eml
//   tmp/<id>.meta.tmp -> fsync -> rename -> inbox/<id>.meta   (ready marker)
//   fsync(inbox/), then 250.
//   <id> is a fresh UUID4; .meta is JSON: id, mail_from, rcpt_to, received_at,
//   size, remote_ip, helo, haraka_uuid.
//
// The plugin also keeps Haraka offline (lookup_rdns answered locally),
// enforces the size limit itself so that it can answer 552 (Haraka's core
// size check can only answer 550), and accepts bare LF line ends in DATA
// (stored as CRLF) where the core would answer 451 (see guard_bare_lf).

const crypto = require('node:crypto')
const fs = require('node:fs')
const fsp = require('node:fs/promises')
const path = require('node:path')
const { promisify } = require('node:util')
const DSN = require('haraka-dsn')

const fsync = promisify(fs.fsync)
const fstat = promisify(fs.fstat)

const SUBDIRS = ['inbox', 'processed', 'failed', 'unmatched', 'tmp']
// Temp files older than this at start are leftovers of a killed server.
const STALE_TMP_MS = 10 * 60 * 1000

exports.register = function () {
    this.load_spool_ini()
    this.prepare_spool()
    this.register_hook('lookup_rdns', 'local_rdns')
    this.register_hook('capabilities', 'advertise_size')
    this.register_hook('mail', 'check_declared_size')
    this.register_hook('data', 'guard_size')
    this.register_hook('data', 'guard_bare_lf')
    this.register_hook('data_post', 'check_size')
    this.register_hook('queue', 'write_to_spool')
}

exports.load_spool_ini = function () {
    this.cfg = this.config.get('mail_pipeline_spool.ini', { booleans: ['+main.fsync'] }, () => {
        this.load_spool_ini()
    })
    const main = this.cfg.main || {}
    const dir = main.spool_dir || process.env.MAIL_PIPELINE_SPOOL_DIR
    if (!dir) {
        throw new Error('mail_pipeline_spool: no spool_dir in mail_pipeline_spool.ini and no MAIL_PIPELINE_SPOOL_DIR')
    }
    this.spool_dir = path.resolve(dir)
    this.max_bytes = parseInt(main.max_bytes, 10) || 26214400
    this.fsync = main.fsync !== false
}

// Create the spool directories (synchronously: Haraka must not listen before
// they exist) and remove temp files that a killed server left behind.
exports.prepare_spool = function () {
    for (const sub of SUBDIRS) {
        fs.mkdirSync(path.join(this.spool_dir, sub), { recursive: true })
    }
    const tmp = path.join(this.spool_dir, 'tmp')
    const now = Date.now()
    for (const name of fs.readdirSync(tmp)) {
        if (!/\.(eml|meta)\.tmp$/.test(name)) continue
        const file = path.join(tmp, name)
        try {
            if (now - fs.statSync(file).mtimeMs > STALE_TMP_MS) fs.unlinkSync(file)
        } catch (ignore) {
            // raced with another process: nothing to clean
        }
    }
    this.loginfo(`spool at ${this.spool_dir}, max_bytes=${this.max_bytes}, fsync=${this.fsync}`)
}

// --- offline: no reverse DNS ---------------------------------------------------------------

// Core Haraka resolves every client's IP unless a lookup_rdns hook answers.
// We never need the name, so answer with the IP itself.
exports.local_rdns = function (next, connection) {
    next(OK, connection.remote.ip || 'localhost')
}

// --- size limit (552) ----------------------------------------------------------------------

// connection.ini max.bytes is 0 (core check off), so advertise our own limit.
exports.advertise_size = function (next, connection) {
    const caps = connection.capabilities
    const i = caps.findIndex((c) => /^SIZE\b/i.test(c))
    if (i === -1) caps.push(`SIZE ${this.max_bytes}`)
    else caps[i] = `SIZE ${this.max_bytes}`
    next()
}

// RFC 1870: MAIL FROM ... SIZE=n larger than the limit is refused up front.
exports.check_declared_size = function (next, connection, params) {
    const declared = parseInt(params[1]?.SIZE, 10)
    if (declared > this.max_bytes) {
        return next(DENY, this.too_big())
    }
    next()
}

// Stop buffering once the message passes the limit: the rest of the DATA is
// read and dropped, and check_size answers 552 at the end.
exports.guard_size = function (next, connection) {
    const txn = connection.transaction
    // Decode header lines as latin1 (one char per byte, as Haraka itself does
    // for HELO clients) so write_message can restore their exact bytes, 8-bit
    // or not; with the default utf8 a non-UTF-8 byte would become U+FFFD.
    txn.encoding = 'binary'
    const max = this.max_bytes
    const add_data = txn.add_data.bind(txn)
    txn.add_data = (line) => {
        // the core counts data_bytes before handing the line over
        if (txn.data_bytes > max) {
            txn.discard_data = true
            return
        }
        add_data(line)
    }
    next()
}

exports.check_size = function (next, connection) {
    const txn = connection.transaction
    if (txn.discard_data || txn.data_bytes > this.max_bytes) {
        return next(DENY, this.too_big())
    }
    next()
}

exports.too_big = function () {
    return DSN.create(552, `Message size exceeds fixed maximum message size (${this.max_bytes} bytes)`, 3, 4)
}

// --- bare line feeds ----------------------------------------------------------------------

const CRLF = Buffer.from('\r\n')

// Haraka 3.3.4 answers any DATA line ending in a bare LF (no CR) with a fixed
// "451 Bare line-feed" and has no setting for it. 451 is temporary: the
// sender retries the same bytes for days, then bounces. Instead, per message:
//  - a line ending in a bare LF is body or header text: its LF becomes CRLF;
//  - only CRLF "." CRLF ends DATA. A "." line that is itself ended by a bare
//    LF, or that follows a line ended by one, is refused with a permanent
//    554 and the connection is closed: the client may believe the message
//    ended there, but a CRLF-only relay would have passed the same bytes on
//    as body text, so taking it as the end would let what follows run as a
//    second, smuggled transaction; reading on as body would leave a client
//    that ends with LF "." LF waiting for an answer until it times out.
// The wrapper stands in for the core's accumulate_data on this connection
// (installed afresh at every DATA, after the core's own Received line); the
// core still sees every line, now CRLF-ended, and keeps all its other checks.
exports.guard_bare_lf = function (next, connection) {
    const core = Object.getPrototypeOf(connection).accumulate_data
    if (typeof core !== 'function') {
        connection.logerror(this, 'Haraka core has no accumulate_data: bare LF handling is off')
        return next()
    }
    const plugin = this
    let after_bare_lf = false
    let refused = false
    connection.accumulate_data = function (line) {
        if (refused) return
        if (!Buffer.isBuffer(line)) return core.call(this, line)
        const n = line.length
        const bare = line[n - 1] === 0x0a && (n < 2 || line[n - 2] !== 0x0d)
        const dot = line[0] === 0x2e && (bare ? n === 2 : n === 3 && line[1] === 0x0d)
        if (dot && (bare || after_bare_lf)) {
            refused = true
            this.lognotice(plugin, 'refused: "." line after a bare LF in DATA')
            this.respond(
                554,
                DSN.create(
                    554,
                    'Bare line feed (LF without CR) next to a "." line: only <CR><LF>.<CR><LF> ends a message. Message refused; send it with CRLF line ends.',
                    5,
                    2,
                ),
                () => this.disconnect(),
            )
            return
        }
        after_bare_lf = bare
        if (bare) {
            const txn = this.transaction
            if (txn) txn.notes.bare_lf_lines = (txn.notes.bare_lf_lines || 0) + 1
            line = Buffer.concat([line.subarray(0, n - 1), CRLF])
        }
        return core.call(this, line)
    }
    next()
}

// --- the spool queue -----------------------------------------------------------------------

exports.write_to_spool = function (next, connection) {
    const txn = connection.transaction
    const id = crypto.randomUUID()
    this.spool(connection, txn, id).then(
        () => {
            const bare = txn.notes.bare_lf_lines
            connection.loginfo(this, `spooled ${id}${bare ? ` (${bare} bare LF line ends stored as CRLF)` : ''}`)
            next(OK, `Message queued as ${id}`)
        },
        (err) => {
            connection.logerror(this, `spool write of ${id} failed: ${err.message}`)
            // Declining (next() without a code) as the only queue plugin makes
            // Haraka answer 451 with our text; DENYSOFT would be 450.
            next(CONT, '4.3.0 Cannot write the message to the spool, try again later')
        },
    )
}

// Write <id>.eml and <id>.meta into inbox/ durably; on failure remove every
// file of this id and rethrow.
exports.spool = async function (connection, txn, id) {
    const tmp = path.join(this.spool_dir, 'tmp')
    const inbox = path.join(this.spool_dir, 'inbox')
    const eml_tmp = path.join(tmp, `${id}.eml.tmp`)
    const meta_tmp = path.join(tmp, `${id}.meta.tmp`)
    const eml = path.join(inbox, `${id}.eml`)
    const meta = path.join(inbox, `${id}.meta`)
    try {
        const size = await this.write_message(txn, eml_tmp)
        await fsp.rename(eml_tmp, eml)
        const record = {
            id,
            mail_from: txn.mail_from ? txn.mail_from.address : '',
            rcpt_to: txn.rcpt_to.map((a) => a.address),
            received_at: new Date().toISOString(),
            size,
            remote_ip: connection.remote.ip,
            helo: connection.hello.host || null,
            haraka_uuid: txn.uuid,
        }
        await this.write_file(meta_tmp, Buffer.from(`${JSON.stringify(record)}\n`))
        await fsp.rename(meta_tmp, meta)
        if (this.fsync) await sync_dir(inbox)
    } catch (err) {
        // .meta is renamed last, so no half-written message can look ready;
        // still remove everything so nothing is left to confuse anyone.
        await Promise.all([eml_tmp, meta_tmp, meta, eml].map((f) => fsp.rm(f, { force: true }).catch(() => {})))
        throw err
    }
}

// Write the message exactly as received, with the header lines Haraka added
// (Received) into a new file; fsync it; resolve to its size in bytes.
exports.write_message = async function (txn, file) {
    // autoClose: false keeps the fd open after 'finish' so it can be fsynced;
    // destroy() closes it (it must be the only one to close it).
    const ws = fs.createWriteStream(file, { flags: 'wx', mode: 0o640, autoClose: false })
    try {
        const fd = await new Promise((resolve, reject) => {
            ws.once('finish', () => resolve(ws.fd))
            ws.once('error', reject)
            // The header: Haraka's list of raw header lines (its own first),
            // back to bytes, then the blank line that ends it.
            const lines = txn.header.lines().map((h) => header_bytes(h.replace(/\r?\n/g, '\r\n')))
            ws.write(Buffer.concat([...lines, Buffer.from('\r\n')]))
            // The body as stored by Haraka; dot_stuffed: true removes the SMTP
            // dot-stuffing, CRLF line ends as on the wire.
            txn.message_stream.pipe(ws, {
                skip_headers: true,
                line_endings: '\r\n',
                dot_stuffed: true,
                ending_dot: false,
            })
        })
        if (this.fsync) await fsync(fd)
        return (await fstat(fd)).size
    } finally {
        if (!ws.closed) {
            await new Promise((resolve) => {
                ws.once('close', resolve)
                ws.destroy()
            })
        }
    }
}

// Header lines read from the client were decoded as latin1 (see guard_size),
// so latin1 gives their bytes back. A line Haraka composed itself may hold
// other characters: those are written as UTF-8.
function header_bytes(line) {
    // eslint-disable-next-line no-control-regex
    return Buffer.from(line, /^[\x00-\xff]*$/.test(line) ? 'latin1' : 'utf8')
}

exports.write_file = async function (file, data) {
    const fh = await fsp.open(file, 'wx', 0o640)
    try {
        await fh.writeFile(data)
        if (this.fsync) await fh.sync()
    } finally {
        await fh.close()
    }
}

// Make the renames into a directory durable.
async function sync_dir(dir) {
    const fh = await fsp.open(dir, 'r')
    try {
        await fh.sync()
    } finally {
        await fh.close()
    }
}
