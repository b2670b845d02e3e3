"""One batch of an ingest pass: read, parse, address, save with one call, then move each pair.

Per batch (see :mod:`.ingest` for the pass around it): each ``.eml`` is read as BYTES (8-bit
mail in any charset is valid mail) with ``O_NOFOLLOW`` and parsed (``max_size``); its
recipients are the envelope ``rcpt_to`` of its ``.meta`` (Bcc included; header recipients stay
on the message as parsed), or for a legacy seed file its To/Cc/Bcc/Delivered-To/X-Original-To
headers. Every address of the batch is resolved in ONE query and one delivery per matched
user is stored with ONE :meth:`EmailSaveService.save_batch` call.

Only after that commit each pair moves: all its deliveries SAVED or DUPLICATE →
``processed/<day>/``; no user matched → ``unmatched/``; unreadable, unparseable or too large
→ ``failed/`` with ``<id>.error.json``; a delivery FAILED for some user → ``failed/`` with
reason ``save_failed`` once every user's outcome is known. Each destination directory is
fsynced once per batch. Any error before the commit puts the whole batch back in the inbox.

The checkpoint (see :mod:`mail_pipeline.platform.faults`) is called at ``after_claim``,
``mid_batch``, ``after_commit`` and ``mid_move``.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
from dataclasses import dataclass
from pathlib import Path

from mail_pipeline.errors import MessageParseError, MessageTooLargeError, SpoolError
from mail_pipeline.intake.spool.files import FileTooLarge, fsync_dir, read_nofollow
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline.intake.spool.meta import SpoolMeta
from mail_pipeline.intake.spool.records import Item, Problem
from mail_pipeline.intake.spool.report import IngestResult
from mail_pipeline.mime import ParsedMessage, parse_message
from mail_pipeline.platform.faults import Checkpoint, no_checkpoint
from mail_pipeline.storage.deliveries import Delivery, Outcome
from mail_pipeline.storage.save_service import EmailSaveService
from mail_pipeline.storage.store import EmailSource, normalize_address

log = logging.getLogger(__name__)

_LEGACY_HEADERS = ("to", "cc", "bcc", "delivered-to", "x-original-to")
_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@dataclass
class _Loaded:
    item: Item
    meta: SpoolMeta
    parsed: ParsedMessage
    addresses: list[str]


class BatchProcessor:
    """Stores one batch of claimed pairs and moves them (see the module docstring)."""

    def __init__(
        self,
        saver: EmailSaveService,
        *,
        max_size: int,
        fsync: bool,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        """Prepare a processor saving with ``saver``; nothing is touched until :meth:`process`."""
        self.saver = saver
        self.max_size = max_size
        self.fsync = fsync
        self.checkpoint = checkpoint

    def process(self, spool: Spool, batch: list[Item], result: IngestResult) -> None:
        """Store and move ``batch``, adding its counts and problems to ``result``.

        Raises:
            StorageUnavailable, SQLAlchemyError: nothing could be stored; every pair of the
                batch is back in the inbox.
        """
        self.checkpoint("after_claim")
        result.found += len(batch)
        touched: set[Path] = set()
        loaded: list[_Loaded] = []
        try:
            for item in batch:
                entry = self._load(spool, item, result, touched)
                if entry is not None:
                    loaded.append(entry)
            self.checkpoint("mid_batch")
            resolved = self.saver.resolve_recipients(
                {a for entry in loaded for a in entry.addresses}
            )
            deliveries: list[Delivery] = []
            owners: list[int] = []  # index into loaded, per delivery
            matched: list[list[int]] = []
            for index, entry in enumerate(loaded):
                users: set[int] = set()
                for address in entry.addresses:
                    users |= resolved.get(address, set())
                matched.append(sorted(users))
                prefix = "spool-legacy" if entry.item.legacy else "haraka"
                for user_id in sorted(users):
                    deliveries.append(
                        Delivery(
                            user_id,
                            entry.parsed,
                            EmailSource.HARAKA,
                            f"{prefix}:{entry.item.stem}",
                            entry.meta.received_at,
                        )
                    )
                    owners.append(index)
            outcome = self.saver.save_batch(deliveries) if deliveries else None
        except BaseException:
            for item in batch:
                spool.return_to_inbox(item)
            raise
        self.checkpoint("after_commit")
        errors: dict[int, list[str]] = {}
        if outcome is not None:
            for index, delivery, res in zip(owners, deliveries, outcome.results, strict=True):
                if res.outcome is Outcome.SAVED:
                    result.saved += 1
                elif res.outcome is Outcome.DUPLICATE:
                    result.duplicates += 1
                else:
                    who = self._username(delivery.user_id)
                    errors.setdefault(index, []).append(f"{who}: {res.error}")
        half = len(loaded) // 2
        days: dict[str, Path] = {}  # processed/<day>/ per day of this batch
        for index, entry in enumerate(loaded):
            if index == half and index:
                self.checkpoint("mid_move")
            try:
                if not matched[index]:
                    spool.move_pair(entry.item, spool.unmatched)
                    touched.add(spool.unmatched)
                    result.unmatched += 1
                elif index in errors:
                    detail = "; ".join(errors[index])
                    spool.move_failed(entry.item, "save_failed", detail, entry.meta)
                    touched.add(spool.failed)
                    result.failed += 1
                    result.add_problem(Problem(entry.item.stem, "save_failed", detail))
                else:
                    day = entry.meta.processed_day
                    folder = days.get(day)
                    if folder is None:
                        folder = days[day] = spool.processed_folder(entry.meta)
                    spool.move_pair(entry.item, folder)
                    touched.add(folder)
                    result.processed += 1
            except FileNotFoundError:
                result.add_problem(
                    Problem(
                        entry.item.stem, "claim_lost", "the claim was taken over before the move"
                    )
                )
        if self.fsync:
            for folder in touched:
                fsync_dir(folder)

    def _username(self, user_id: int) -> str:
        """Return the user's name for a problem line (``user <id>`` when it cannot be read:
        the store may be what failed)."""
        try:
            return self.saver.store.users.get(user_id).username
        except Exception:  # a problem line must not raise
            return f"user {user_id}"

    def _load(
        self, spool: Spool, item: Item, result: IngestResult, touched: set[Path]
    ) -> _Loaded | None:
        """Read, parse and address one claimed pair; quarantine it and return None if bad."""
        meta: SpoolMeta | None = None
        reason = detail = ""
        try:
            meta = SpoolMeta.read(item.meta, legacy=item.legacy)
            addresses = None if meta.legacy else envelope(meta)
            raw = read_nofollow(item.eml, self.max_size)
            parsed = parse_message(raw, max_size=self.max_size)
        except ValueError as exc:  # MetaError included
            reason, detail = "bad_meta", str(exc)
        except (FileTooLarge, MessageTooLargeError) as exc:
            reason, detail = "too_large", str(exc)
        except MessageParseError as exc:
            reason, detail = exc.reason, exc.detail
        except SpoolError as exc:
            reason, detail = "not_regular", str(exc)
        except FileNotFoundError:
            result.add_problem(Problem(item.stem, "claim_lost", "the claim was taken over"))
            return None
        except OSError as exc:
            reason, detail = "unreadable", str(exc)
        except Exception as exc:  # a parser bug must harm only this message
            log.exception("parsing %s failed", item.stem)
            reason, detail = "parser_error", repr(exc)
        if reason or meta is None:
            self._quarantine(spool, item, reason, detail, meta, result, touched)
            return None
        if addresses is None:
            addresses = header_recipients(parsed)
        return _Loaded(item, meta, parsed, addresses)

    def _quarantine(
        self,
        spool: Spool,
        item: Item,
        reason: str,
        detail: str,
        meta: SpoolMeta | None,
        result: IngestResult,
        touched: set[Path],
    ) -> None:
        try:
            spool.move_failed(item, reason, detail, meta)
        except FileNotFoundError:
            result.add_problem(Problem(item.stem, "claim_lost", "the claim was taken over"))
            return
        touched.add(spool.failed)
        result.failed += 1
        result.add_problem(Problem(item.stem, reason, detail[:500]))


def envelope(meta: SpoolMeta) -> list[str]:
    """Return the normalised envelope recipients of a ``.meta`` (blank entries dropped)."""
    return [normalize_address(a) for a in meta.rcpt_to if a.strip()]


def header_recipients(parsed: ParsedMessage) -> list[str]:
    """Return the header recipients of a legacy file: To, Cc, Bcc, Delivered-To, X-Original-To."""
    found = [*parsed.to, *parsed.cc, *parsed.bcc]
    head = parsed.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = _HEADER_PARSER.parsebytes(head)
    values = [str(v) for name in _LEGACY_HEADERS[3:] for v in headers.get_all(name) or []]
    found += [addr for _name, addr in email.utils.getaddresses(values) if "@" in addr]
    return sorted({normalize_address(a) for a in found if a})
