"""The Haraka SMTP server and its durable spool, driven over SMTP with smtplib.

What is checked is the spool protocol the ingester relies on: one ``inbox/<id>.eml`` and
``inbox/<id>.meta`` pair per accepted message, the bytes as sent, every envelope recipient in
the .meta, 250 only once both files are in place, 550/552/451 with nothing written otherwise,
and no temp file left behind. Plus the launcher's start/stop/status and its error reports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import smtplib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.spool import haraka as hs
from mail_pipeline.intake.spool import haraka_config as hc
from mail_pipeline_tests.fixtures.haraka import TEST_MAX_MESSAGE_BYTES, HarakaRig
from mail_pipeline_tests.fixtures.servers import free_port

pytestmark = pytest.mark.haraka

SENDER = "sender@remote.example"


def simple_message(subject: str = "hello", body: str = "Hello there.\n") -> bytes:
    return (
        f"From: Sender <{SENDER}>\r\n"
        f"To: Alice <alice@example.test>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4()}@remote.example>\r\n"
        "\r\n" + body.replace("\n", "\r\n")
    ).encode("ascii")


def assert_sent_bytes_preserved(spooled: bytes, sent: bytes) -> None:
    """The .eml is Haraka's added header lines followed by exactly what was sent."""
    assert spooled.endswith(sent)
    added = spooled[: len(spooled) - len(sent)]
    assert added.startswith(b"Received: from ")
    assert b"\r\n\r\n" not in added  # only header lines were prepended


# --- accepted mail -------------------------------------------------------------------------


def test_single_recipient_gives_one_eml_meta_pair(haraka: HarakaRig) -> None:
    sent = simple_message(body="Line one.\n.A line starting with a dot.\n\nEnd.\n")

    before = dt.datetime.now(dt.UTC)
    refused = haraka.send(sent, rcpt_to=["alice@example.test"])
    after = dt.datetime.now(dt.UTC)

    assert refused == {}
    [msg] = haraka.messages()
    assert haraka.files("inbox") == [f"{msg.id}.eml", f"{msg.id}.meta"]
    assert_sent_bytes_preserved(msg.data, sent)

    meta = msg.meta
    assert set(meta) == {
        "id",
        "mail_from",
        "rcpt_to",
        "received_at",
        "size",
        "remote_ip",
        "helo",
        "haraka_uuid",
    }
    assert meta["id"] == msg.id
    assert uuid.UUID(msg.id).version == 4
    assert str(uuid.UUID(msg.id)) == msg.id  # hex with dashes, lower case
    assert meta["mail_from"] == SENDER
    assert meta["rcpt_to"] == ["alice@example.test"]
    received_at = dt.datetime.fromisoformat(meta["received_at"].replace("Z", "+00:00"))
    assert received_at.utcoffset() == dt.timedelta(0)
    assert before - dt.timedelta(seconds=1) <= received_at <= after + dt.timedelta(seconds=1)
    assert meta["size"] == len(msg.data) == msg.eml_path.stat().st_size
    assert meta["remote_ip"] == "127.0.0.1"
    assert meta["helo"]
    assert meta["haraka_uuid"] and meta["haraka_uuid"].encode() in msg.data  # Received: ... id
    for sub in ("processed", "failed", "unmatched", "tmp"):
        assert haraka.files(sub) == []


def test_multiple_recipients_and_bcc_all_in_rcpt_to(haraka: HarakaRig) -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "Alice <alice@example.test>"
    message["Cc"] = "bob@alias.test"
    message["Subject"] = "to many"
    message.set_content("For several people.\n")
    envelope = ["alice@example.test", "bob@alias.test", "Secret.Carol@Example.Test"]  # Bcc: carol

    assert haraka.send(message, rcpt_to=envelope) == {}

    [msg] = haraka.messages()
    assert msg.meta["rcpt_to"] == envelope
    assert b"Secret.Carol" not in msg.data  # Bcc is only in the envelope


def test_null_sender_is_an_empty_mail_from(haraka: HarakaRig) -> None:
    haraka.send(simple_message(subject="bounce"), mail_from="")
    [msg] = haraka.messages()
    assert msg.meta["mail_from"] == ""


def test_several_messages_on_one_connection_get_their_own_pairs(haraka: HarakaRig) -> None:
    sent = [simple_message(subject=f"message {i}") for i in range(5)]
    with haraka.smtp() as client:
        for data in sent:
            client.sendmail(SENDER, ["alice@example.test"], data)

    messages = haraka.messages()
    assert len(messages) == 5
    assert len({m.id for m in messages}) == 5
    assert len({m.meta["haraka_uuid"] for m in messages}) == 5
    assert sorted(m.data[-len(sent[0]) :] for m in messages) == sorted(sent)


# --- bytes as sent ---------------------------------------------------------------------------


def test_8bit_iso_8859_1_body_is_preserved_byte_exact(haraka: HarakaRig) -> None:
    body = "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, \u00e0 bient\u00f4t.\r\n".encode("iso-8859-1")
    sent = (
        b"From: sender@remote.example\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: latin-1\r\n"
        b"X-Broken-Mailer: raw 8-bit in a header: caf\xe9\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n" + body + b"\xff\xfe\x80 raw high bytes\r\n"
    )
    with pytest.raises(UnicodeDecodeError):
        sent.decode("utf-8")

    with haraka.smtp() as client:
        client.sendmail(SENDER, ["alice@example.test"], sent)  # bytes: sent as they are

    [msg] = haraka.messages()
    assert_sent_bytes_preserved(msg.data, sent)
    assert msg.meta["size"] == len(msg.data)


def test_utf8_headers_long_lines_and_dots_are_preserved(haraka: HarakaRig) -> None:
    sent = (
        "From: S\u00e9bastien <sender@remote.example>\r\n"
        "To: alice@example.test\r\n"
        "Subject: \u4f60\u597d, caf\u00e9\r\n"
        "\r\n"
        "." + "x" * 3000 + "\r\n"
        "..two dots\r\n"
        ".\r\n"  # smtplib dot-stuffs this; it must come back as a lone dot line
        "last line without dot\r\n"
    ).encode("utf-8")

    with haraka.smtp() as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail(SENDER, ["alice@example.test"], sent)

    [msg] = haraka.messages()
    assert_sent_bytes_preserved(msg.data, sent)


def test_headers_of_a_helo_client_are_not_double_encoded(haraka: HarakaRig) -> None:
    sent = (
        "From: sender@remote.example\r\n"
        "To: alice@example.test\r\n"
        "Subject: gr\u00fc\u00dfe, \u4f60\u597d\r\n"
        "\r\n"
        "K\u00e4se\r\n"
    ).encode("utf-8")
    with haraka.smtp() as client:
        client.helo("old-client.example")  # no EHLO: Haraka reads the data as binary
        client.sendmail(SENDER, ["alice@example.test"], sent)

    [msg] = haraka.messages()
    assert_sent_bytes_preserved(msg.data, sent)
    assert msg.meta["helo"] == "old-client.example"


# --- bare line feeds (raw socket: smtplib would fix the line ends) -----------------------------


class RawSmtp:
    """A byte-exact SMTP client: sends exactly the bytes given, reads whole replies."""

    def __init__(self, haraka: HarakaRig) -> None:
        self.sock = socket.create_connection((haraka.host, haraka.port), timeout=30)
        self.buffer = b""
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, str]:
        """Return (code, text of all lines) of the next reply; (0, "") if the server closed."""
        lines: list[bytes] = []
        while True:
            while b"\r\n" not in self.buffer:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return 0, b" ".join(lines).decode()
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line[4:])
            if line[3:4] != b"-":
                return int(line[:3]), b" ".join(lines).decode()

    def command(self, data: bytes) -> tuple[int, str]:
        """Send ``data`` as it is and return the reply."""
        self.sock.sendall(data)
        return self.reply()

    def start_data(self, rcpt: str = "alice@example.test") -> None:
        """EHLO, MAIL FROM, RCPT TO and DATA, each expected to succeed."""
        assert self.command(b"EHLO raw.example\r\n")[0] == 250
        assert self.command(f"MAIL FROM:<{SENDER}>\r\n".encode())[0] == 250
        assert self.command(f"RCPT TO:<{rcpt}>\r\n".encode())[0] == 250
        assert self.command(b"DATA\r\n")[0] == 354

    def closed(self) -> bool:
        """Return whether the server has closed the connection (nothing more to read)."""
        code, _ = self.reply()
        return code == 0

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


@pytest.fixture
def raw_smtp(haraka: HarakaRig) -> Iterator[Callable[[], RawSmtp]]:
    clients: list[RawSmtp] = []

    def connect() -> RawSmtp:
        clients.append(RawSmtp(haraka))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


BARE_LF_MESSAGE = (
    b"From: Sender <sender@remote.example>\n"
    b"To: alice@example.test\n"
    b"Subject: sent by a script with bare LF\n"
    b"Message-ID: <bare-lf@remote.example>\n"
    b"\n"
    b"First line.\n"
    b"..a dot-stuffed line\n"
    b"a line with CRLF among them\r\n"
    b"a bare CR then a dot is body text\r.\r\n"
    b"last line.\n"
)


def test_bare_lf_message_is_accepted_and_spooled_with_crlf(
    haraka: HarakaRig, raw_smtp: Callable[[], RawSmtp]
) -> None:
    client = raw_smtp()
    client.start_data()

    code, text = client.command(BARE_LF_MESSAGE + b"\r\n.\r\n")

    assert code == 250, text  # never 451: a temporary refusal would be retried for days
    [msg] = haraka.messages()
    expected = (
        b"From: Sender <sender@remote.example>\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: sent by a script with bare LF\r\n"
        b"Message-ID: <bare-lf@remote.example>\r\n"
        b"\r\n"
        b"First line.\r\n"
        b".a dot-stuffed line\r\n"
        b"a line with CRLF among them\r\n"
        b"a bare CR then a dot is body text\r.\r\n"
        b"last line.\r\n"
        b"\r\n"
    )
    assert_sent_bytes_preserved(msg.data, expected)
    assert b"\n" not in msg.data.replace(b"\r\n", b"")  # no bare LF left anywhere
    assert msg.meta["size"] == len(msg.data)
    # the connection goes on normally
    assert client.command(b"QUIT\r\n")[0] == 221


# Ways a "." line can follow a bare LF. Only CRLF "." CRLF ends DATA: a server that took any
# of these for the end would let the rest, hidden as body text by a CRLF-only relay, run as
# commands of a second, forged transaction (SMTP smuggling).
AMBIGUOUS_ENDS = {
    "LF dot LF": b"\n.\n",
    "LF dot CRLF": b"\n.\r\n",
    "CRLF dot LF": b"\r\n.\n",
}
SMUGGLED = (
    b"MAIL FROM:<ceo@example.test>\r\n"
    b"RCPT TO:<alice@example.test>\r\n"
    b"DATA\r\n"
    b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\nWire the money.\r\n"
    b"\r\n.\r\n"
)


@pytest.mark.parametrize("end", AMBIGUOUS_ENDS.values(), ids=AMBIGUOUS_ENDS.keys())
def test_dot_line_after_a_bare_lf_is_refused_for_good_and_smuggles_nothing(
    haraka: HarakaRig, raw_smtp: Callable[[], RawSmtp], end: bytes
) -> None:
    client = raw_smtp()
    client.start_data()

    code, text = client.command(b"Subject: first\r\n\r\nbody" + end + SMUGGLED)

    assert 500 <= code < 600, (code, text)  # permanent: never 4xx
    assert "CRLF" in text or "<CR><LF>" in text  # says what to fix
    assert client.closed()  # the rest of the stream is not read as commands
    assert haraka.all_files() == []  # neither the first message nor a smuggled one
    # the server itself is fine
    haraka.send(simple_message(subject="afterwards"))
    [msg] = haraka.messages()
    assert b"Subject: afterwards" in msg.data


def test_bare_lf_dot_line_that_ends_a_script_message_gets_5xx_not_a_hang(
    haraka: HarakaRig, raw_smtp: Callable[[], RawSmtp]
) -> None:
    # A script writing "\n" everywhere ends with LF "." LF and waits for the answer.
    client = raw_smtp()
    client.start_data()
    code, text = client.command(BARE_LF_MESSAGE + b".\n")
    assert 500 <= code < 600, (code, text)
    assert haraka.all_files() == []


# --- refused mail ----------------------------------------------------------------------------


def test_unknown_domain_is_refused_with_550_and_nothing_written(haraka: HarakaRig) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        haraka.send(simple_message(), rcpt_to=["someone@elsewhere.example"])

    code, _ = refused.value.recipients["someone@elsewhere.example"]
    assert code == 550
    assert haraka.all_files() == []


def test_mixed_recipients_spool_only_the_local_ones(haraka: HarakaRig) -> None:
    refused = haraka.send(simple_message(), rcpt_to=["alice@example.test", "victim@relay.example"])

    assert refused["victim@relay.example"][0] == 550
    [msg] = haraka.messages()
    assert msg.meta["rcpt_to"] == ["alice@example.test"]


def big_message(size: int) -> bytes:
    head = simple_message(subject="big", body="")
    line = b"y" * 998 + b"\r\n"
    return head + line * (size // len(line) + 1)


def test_oversize_message_declared_with_size_is_refused_552(haraka: HarakaRig) -> None:
    with haraka.smtp() as client:
        client.ehlo()
        assert int(client.esmtp_features["size"]) == TEST_MAX_MESSAGE_BYTES
        # smtplib declares SIZE=<len> in MAIL FROM since the server offers SIZE
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ["alice@example.test"], big_message(20_000_000))
    assert refused.value.smtp_code == 552
    assert haraka.all_files() == []


def test_oversize_message_without_size_is_refused_552_after_data(haraka: HarakaRig) -> None:
    with haraka.smtp() as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250  # no SIZE= parameter
        assert client.rcpt("alice@example.test")[0] == 250
        code, reply = client.data(big_message(20_000_000))
        assert code == 552, reply
        assert haraka.all_files() == []

        # the connection is still usable for the next message
        client.rset()
        client.sendmail(SENDER, ["alice@example.test"], simple_message(subject="after"))
    [msg] = haraka.messages()
    assert b"Subject: after" in msg.data


def test_message_just_under_the_limit_is_accepted(haraka: HarakaRig) -> None:
    sent = big_message(TEST_MAX_MESSAGE_BYTES - 300_000)
    assert len(sent) < TEST_MAX_MESSAGE_BYTES - 200_000  # room for the Received header
    haraka.send(sent)
    [msg] = haraka.messages()
    assert_sent_bytes_preserved(msg.data, sent)


# --- write failures: 451, nothing left -------------------------------------------------------


@pytest.fixture
def broken_spool_dir(haraka: HarakaRig) -> Iterator[Callable[[str], None]]:
    """Replace a spool sub-directory by a plain file (root ignores permissions); restore after."""
    broken: list[Path] = []

    def break_dir(sub: str) -> None:
        path = haraka.path(sub)
        path.rename(path.with_name(f"{sub}.saved"))
        path.write_text("not a directory\n")
        broken.append(path)

    yield break_dir
    for path in broken:
        path.unlink()
        path.with_name(f"{path.name}.saved").rename(path)


def test_unwritable_inbox_gives_451_and_no_partial_files(
    haraka: HarakaRig, broken_spool_dir: Callable[[str], None]
) -> None:
    broken_spool_dir("inbox")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        haraka.send(simple_message())

    assert refused.value.smtp_code == 451
    assert b"spool" in refused.value.smtp_error
    assert haraka.files("tmp") == []
    assert haraka.files("inbox.saved") == []


def test_unwritable_tmp_gives_451_and_nothing_in_inbox(
    haraka: HarakaRig, broken_spool_dir: Callable[[str], None]
) -> None:
    broken_spool_dir("tmp")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        haraka.send(simple_message())

    assert refused.value.smtp_code == 451
    assert haraka.files("inbox") == []


def test_spool_works_again_once_the_directory_is_back(haraka: HarakaRig) -> None:
    inbox = haraka.path("inbox")
    inbox.rename(inbox.with_name("inbox.saved"))
    inbox.write_text("")
    try:
        with haraka.smtp() as client:
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail(SENDER, ["alice@example.test"], simple_message())
            inbox.unlink()
            inbox.with_name("inbox.saved").rename(inbox)
            client.rset()
            client.sendmail(SENDER, ["alice@example.test"], simple_message(subject="retry"))
    finally:
        if inbox.is_file():
            inbox.unlink()
            inbox.with_name("inbox.saved").rename(inbox)
    assert len(haraka.messages()) == 1
    assert haraka.files("tmp") == []


# --- durability ordering ---------------------------------------------------------------------


def test_250_arrives_only_after_both_files_are_in_inbox(haraka: HarakaRig) -> None:
    inbox = haraka.path("inbox")
    with haraka.smtp() as client:
        for i in range(25):
            sent = simple_message(subject=f"ordered {i}")
            client.sendmail(SENDER, ["alice@example.test"], sent)
            # the moment sendmail returned (250), the newest pair must be complete
            metas = list(inbox.glob("*.meta"))
            assert len(metas) == i + 1
            emls = {p.stem for p in inbox.glob("*.eml")}
            assert emls == {p.stem for p in metas}
            for meta_path in metas:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
                assert (inbox / f"{meta['id']}.eml").stat().st_size == meta["size"]
    assert haraka.files("tmp") == []


def test_no_temp_files_left_after_a_mixed_run(haraka: HarakaRig) -> None:
    with haraka.smtp() as client:
        client.sendmail(SENDER, ["alice@example.test"], simple_message())
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail(SENDER, ["x@nowhere.example"], simple_message())
        client.rset()
        client.mail(SENDER)
        client.rcpt("alice@example.test")
        assert client.data(big_message(TEST_MAX_MESSAGE_BYTES + 1))[0] == 552
        client.rset()
        client.sendmail(SENDER, ["bob@alias.test"], simple_message())

    assert haraka.files("tmp") == []
    names = haraka.files("inbox")
    assert len(names) == 4
    assert not [n for n in names if not n.endswith((".eml", ".meta"))]


def test_throughput_200_messages_of_20_kb(
    haraka: HarakaRig, record_property: Callable[[str, object], None]
) -> None:
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17 + "\n") * 20
    sent = [simple_message(subject=f"bulk {i}", body=body) for i in range(200)]
    assert 19_000 < len(sent[0]) < 22_000

    started = time.perf_counter()
    with haraka.smtp() as client:
        for data in sent:
            client.sendmail(SENDER, ["alice@example.test"], data)
    elapsed = time.perf_counter() - started

    assert len(haraka.messages()) == 200
    rate = 200 / elapsed
    record_property("haraka_messages_per_second", round(rate, 1))
    print(f"\nHaraka accepted 200 x 20 KB in {elapsed:.2f} s: {rate:.0f} msg/s")
    assert rate > 5


# --- the launcher ----------------------------------------------------------------------------


def test_start_status_stop(haraka_factory: Callable[..., HarakaRig]) -> None:
    rig = haraka_factory(domains=("example.test",), max_message_bytes=1024 * 1024)
    print(f"\nHaraka started in {rig.process.started_in:.2f} s")

    for sub in hc.SPOOL_SUBDIRS:
        assert (rig.spool_dir / sub).is_dir()
    state = hs.status(rig.runtime_dir)
    assert state["running"] is True
    assert state["pid"] == rig.process.pid
    assert (state["host"], state["port"]) == ("127.0.0.1", rig.port)
    assert state["spool_dir"] == str(rig.spool_dir)
    assert state["domains"] == ["example.test"]
    assert (rig.runtime_dir / "haraka.pid").read_text().strip() == str(rig.process.pid)
    assert (rig.runtime_dir / "config" / "host_list").read_text() == "example.test\n"

    with rig.smtp() as client:
        client.ehlo()
        assert int(client.esmtp_features["size"]) == 1024 * 1024
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        rig.send(simple_message(), rcpt_to=["bob@alias.test"])  # not a domain of this one

    with pytest.raises(hs.HarakaStartError, match="already running"):
        hs.start(rig.config)

    assert hs.stop(rig.runtime_dir) is True
    state = hs.status(rig.runtime_dir)
    assert state["running"] is False and state["pid"] is None
    assert not (rig.runtime_dir / "haraka.pid").exists()
    with pytest.raises(OSError):
        socket.create_connection((rig.host, rig.port), timeout=1).close()
    assert hs.stop(rig.runtime_dir) is False  # stopping twice is harmless


def test_restart_on_the_same_spool_keeps_the_files(
    haraka_factory: Callable[..., HarakaRig],
) -> None:
    rig = haraka_factory()
    rig.send(simple_message())
    hs.stop(rig.runtime_dir)
    rig.process = hs.start(rig.config)
    rig.send(simple_message())
    assert len(rig.messages()) == 2


def test_start_removes_only_stale_temp_files(
    haraka_factory: Callable[..., HarakaRig], tmp_path: Path
) -> None:
    tmp = tmp_path / "spool" / "tmp"
    tmp.mkdir(parents=True)
    stale, fresh, other = tmp / "old.eml.tmp", tmp / "new.meta.tmp", tmp / "keep.txt"
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))

    haraka_factory(spool_dir=tmp_path / "spool")

    assert sorted(p.name for p in tmp.iterdir()) == ["keep.txt", "new.meta.tmp"]


def test_status_of_a_runtime_dir_that_never_ran(tmp_path: Path) -> None:
    state = hs.status(tmp_path)
    assert state["running"] is False
    assert state["pid"] is None


def test_stale_pid_file_is_not_signalled(tmp_path: Path) -> None:
    (tmp_path / "haraka.pid").write_text(f"{os.getpid()}\n")  # alive, but not Haraka
    assert hs.status(tmp_path)["running"] is False
    assert hs.stop(tmp_path) is False
    assert not (tmp_path / "haraka.pid").exists()


def test_port_in_use_is_reported(haraka: HarakaRig, tmp_path: Path) -> None:
    config = hc.HarakaConfig(
        spool_dir=tmp_path / "spool", domains=("example.test",), port=haraka.port
    )
    with pytest.raises(hs.HarakaStartError, match="in use") as failed:
        hs.start(config)
    assert isinstance(failed.value, hs.HarakaListenError)
    assert [p.field for p in failed.value.problems] == ["port"]
    assert str(failed.value).startswith(
        f"HarakaConfig.port: cannot listen on 127.0.0.1:{haraka.port}"
    )


def test_a_host_of_another_machine_is_the_host_s_problem(tmp_path: Path) -> None:
    config = hc.HarakaConfig(
        spool_dir=tmp_path / "spool", domains=("example.test",), host="192.0.2.1", port=2525
    )
    with pytest.raises(hs.HarakaListenError) as failed:
        hs.start(config)
    assert isinstance(failed.value, ConfigError)  # the config's problem, keyed by field
    assert [p.field for p in failed.value.problems] == ["host"]
    assert failed.value.render({"host": "--host"}).startswith(
        "--host: cannot listen on 192.0.2.1:2525: "
    )
    assert not (tmp_path / "spool").exists()  # refused before anything was prepared


def test_haraka_exiting_during_start_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_haraka = hc.find_haraka_dir()
    broken = tmp_path / "haraka"
    shutil.copytree(repo_haraka / "config", broken / "config")
    shutil.copytree(repo_haraka / "plugins", broken / "plugins")
    (broken / "node_modules").symlink_to(repo_haraka / "node_modules")
    with (broken / "config" / "plugins").open("a") as plugins:
        plugins.write("no_such_plugin_here\n")
    monkeypatch.setenv(hc.HARAKA_DIR_ENV, str(broken))
    config = hc.HarakaConfig(
        spool_dir=tmp_path / "spool",
        runtime_dir=tmp_path / "runtime",
        domains=("example.test",),
        port=free_port(),
    )

    with pytest.raises(hs.HarakaStartError, match="exited") as failed:
        hs.start(config)

    assert "no_such_plugin_here" in str(failed.value)
    assert hs.status(config.resolved_runtime_dir)["running"] is False


def test_missing_node_modules_asks_for_npm_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(hc.find_haraka_dir() / "config", tmp_path / "haraka" / "config")
    monkeypatch.setenv(hc.HARAKA_DIR_ENV, str(tmp_path / "haraka"))
    config = hc.HarakaConfig(spool_dir=tmp_path / "spool", domains=("example.test",))
    with pytest.raises(ConfigError, match=r"npm ci --prefix haraka"):
        hs.start(config)
