"""After a batch is committed: mark ``\\Seen``, MOVE or DELETE exactly its stored UIDs.

A post-action runs only on UIDs already committed to the store, on a read-write SELECT made
for that purpose only (the sync itself reads on a read-only EXAMINE). DELETE is ``\\Deleted``
+ ``UID EXPUNGE`` of exactly those UIDs; MOVE uses the MOVE command, or COPY + ``\\Deleted`` +
``UID EXPUNGE`` on a server without it. Without UIDPLUS nothing is expunged (a plain EXPUNGE
could remove other sessions' ``\\Deleted`` messages): the messages stay flagged.

A post-action is at most once: after a crash between a batch's commit and its post-action the
messages are stored and the cursor is past them, so they stay on the server untouched.
"""

from __future__ import annotations

import logging

import imapclient

from mail_pipeline.errors import ImapProtocolError
from mail_pipeline.intake.imap.account import PostAction
from mail_pipeline.intake.imap.translate import Translate

__all__ = ["FolderPostActions", "has_capability"]

log = logging.getLogger(__name__)


def has_capability(client: imapclient.IMAPClient, name: str) -> bool:
    """True when the server announced capability ``name``."""
    return bool(client.has_capability(name))


def _uid_expunge(client: imapclient.IMAPClient, uids: list[int]) -> None:
    """Expunge exactly ``uids`` (UIDPLUS).

    Raises:
        ImapProtocolError: the server has no UIDPLUS; the messages are left flagged.
    """
    if not has_capability(client, "UIDPLUS"):
        raise ImapProtocolError(
            "the server has no UIDPLUS (UID EXPUNGE): messages left flagged \\Deleted"
        )
    client.uid_expunge(uids)


class FolderPostActions:
    """Runs one folder's post-action, batch by batch, on the session of its sync."""

    def __init__(
        self,
        client: imapclient.IMAPClient,
        imap: Translate,
        *,
        action: PostAction,
        move_to: str | None,
        folder: str,
        uidvalidity: int,
        username: str,
    ) -> None:
        """Act on ``folder`` (examined with ``uidvalidity``) through ``client``; ``imap``
        types the errors; ``username`` names the mailbox in the log."""
        self.client = client
        self.imap = imap
        self.action = action
        self.move_to = move_to
        self.folder = folder
        self.uidvalidity = uidvalidity
        self.username = username
        #: Whether the folder is selected read-write already (one SELECT per folder).
        self.writable = False

    def apply(self, uids: list[int]) -> str | None:
        """Run the post-action on ``uids`` (already committed).

        Returns:
            None when it was done (or there is none); else a warning for the result: a
            ``move_to`` that is missing or the folder itself, or a refusal by the server
            (a NO, a changed UIDVALIDITY, no UIDPLUS), which is also logged.

        Raises:
            ImapConnectError: the connection failed (typed by ``imap``).
        """
        action, folder, client = self.action, self.folder, self.client
        target = self.move_to
        if action is PostAction.NONE:
            return None
        if action is PostAction.MOVE and (not target or target == folder):
            return f"folder {folder!r}: not moved: move_to is {target!r}"
        try:
            if not self.writable:
                with self.imap(f"selecting folder {folder!r} for {action.value}"):
                    info = client.select_folder(folder, readonly=False)
                if int(info.get(b"UIDVALIDITY") or 0) != self.uidvalidity:
                    raise ImapProtocolError(
                        f"folder {folder!r}: UIDVALIDITY changed during the sync; "
                        f"{action.value} skipped"
                    )
                self.writable = True
            with self.imap(f"{action.value} of {len(uids)} message(s) in folder {folder!r}"):
                if action is PostAction.MARK_SEEN:
                    client.add_flags(uids, [imapclient.SEEN], silent=True)
                elif action is PostAction.DELETE:
                    client.add_flags(uids, [imapclient.DELETED], silent=True)
                    _uid_expunge(client, uids)
                elif action is PostAction.MOVE:
                    assert target is not None
                    if has_capability(client, "MOVE"):
                        client.move(uids, target)
                    else:
                        client.copy(uids, target)
                        client.add_flags(uids, [imapclient.DELETED], silent=True)
                        _uid_expunge(client, uids)
        except ImapProtocolError as exc:
            message = f"post-action {action.value} failed in folder {folder!r}: {exc}"
            log.warning("%s: %s", self.username, message)
            return message
        return None
