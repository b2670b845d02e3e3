"""The demo set-up the README's run command uses: users, an alias, and mail in the spool."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import getaddresses
from importlib import resources
from pathlib import Path

from mail_pipeline.errors import AlreadyExistsError
from mail_pipeline.intake.spool.writer import spool_message
from mail_pipeline.storage.store import MailStore

DEMO_DOMAIN = "demo.test"
DEMO_USERS = (("alice", f"alice@{DEMO_DOMAIN}"), ("bob", f"bob@{DEMO_DOMAIN}"))
DEMO_ALIASES = (("bob", f"team@{DEMO_DOMAIN}"),)


@dataclass(frozen=True)
class DemoReport:
    """What :func:`install_demo` did."""

    users_added: list[str]
    aliases_added: list[str]
    spooled: list[str]
    #: demo messages not spooled again: a copy is already in a folder of the spool
    already_spooled: list[str] = field(default_factory=list)


def demo_messages() -> list[tuple[str, bytes]]:
    """Return (file name, bytes) of the demo messages shipped in the package, by name."""
    folder = resources.files("mail_pipeline") / "demo"
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir() if p.name.endswith(".eml"))


def _header_recipients(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    fields = [
        line.split(":", 1)[1]
        for line in head.replace("\r\n ", " ").split("\r\n")
        if line.lower().startswith(("to:", "cc:"))
    ]
    return [addr for _name, addr in getaddresses(fields) if "@" in addr]


def _spooled_copies(spool_dir: Path, messages: list[tuple[str, bytes]]) -> set[str]:
    """Return the names of the demo ``messages`` of which a copy (the same bytes) is already
    in some folder of the spool (inbox, processed, failed, unmatched ...)."""
    by_size: dict[int, list[tuple[str, bytes]]] = {}
    for name, raw in messages:
        by_size.setdefault(len(raw), []).append((name, raw))
    found: set[str] = set()
    if not spool_dir.is_dir():
        return found
    for path in spool_dir.rglob("*.eml"):
        try:
            candidates = by_size.get(path.stat().st_size)
            if candidates:
                data = path.read_bytes()
                found |= {name for name, raw in candidates if raw == data}
        except OSError:
            continue
    return found


def install_demo(store: MailStore, spool_dir: Path) -> DemoReport:
    """Create the demo users and alias (if missing) and spool the demo messages.

    Each message is spooled for its header recipients, as if Haraka had accepted it. A
    message of which a copy is already in the spool (waiting, processed, or kept in
    unmatched/ or failed/) is not spooled again, so running the demo on every start adds
    nothing twice.
    """
    store.upgrade()
    users: list[str] = []
    aliases: list[str] = []
    spooled: list[str] = []
    for name, email in DEMO_USERS:
        try:
            store.users.add(name, email)
            users.append(name)
        except AlreadyExistsError:
            pass
    for name, address in DEMO_ALIASES:
        try:
            store.users.add_alias(name, address)
            aliases.append(address)
        except AlreadyExistsError:
            pass
    messages = demo_messages()
    present = _spooled_copies(spool_dir, messages)
    for file_name, raw in messages:
        if file_name in present:
            continue
        spool_message(spool_dir, raw, _header_recipients(raw), mail_from="demo@example.net")
        spooled.append(file_name)
    return DemoReport(users, aliases, spooled, sorted(present))
