"""The mail store: the only code of mail_pipeline that talks SQL.

See :class:`MailStore`. Repositories: :mod:`.users`, :mod:`.tasks` (EmailTask rows; the
state machine is :mod:`.transitions`), :mod:`.locks` (lease locks), :mod:`.messages` (messages
and attachments; IMAP sync positions are :mod:`.sync_state`), :mod:`.maintenance` (retention
with audit, task statistics), :mod:`.mailbox_state` (mailboxes), :mod:`.oauth2_grants`
(OAuth2 grants, sealed); :mod:`.columns` makes text fit the columns (NUL removed, cut to the
models' lengths).
"""

from mail_pipeline.storage.store.columns import clean_row, clean_text, column_length, text_limits
from mail_pipeline.storage.store.locks import Lease, LockGrant
from mail_pipeline.storage.store.mailbox_state import LastFetch, MailboxStatus
from mail_pipeline.storage.store.maintenance import AuditRecord, SourceStats, TaskStats
from mail_pipeline.storage.store.messages import NewAttachment, NewMessage, StoredMessage
from mail_pipeline.storage.store.oauth2_grants import OAuth2Grant
from mail_pipeline.storage.store.store import MailStore
from mail_pipeline.storage.store.sync_state import SyncPosition, SyncUpdate
from mail_pipeline.storage.store.transitions import (
    ALLOWED_TRANSITIONS,
    EmailSource,
    TaskCounters,
    TaskFinish,
    TaskSnapshot,
    TaskStatus,
)
from mail_pipeline.storage.store.users import AliasRecord, UserRecord, normalize_address

__all__ = [
    "ALLOWED_TRANSITIONS",
    "AliasRecord",
    "AuditRecord",
    "EmailSource",
    "LastFetch",
    "Lease",
    "LockGrant",
    "MailStore",
    "MailboxStatus",
    "NewAttachment",
    "NewMessage",
    "OAuth2Grant",
    "SourceStats",
    "StoredMessage",
    "SyncPosition",
    "SyncUpdate",
    "TaskCounters",
    "TaskFinish",
    "TaskSnapshot",
    "TaskStats",
    "TaskStatus",
    "UserRecord",
    "clean_row",
    "clean_text",
    "column_length",
    "normalize_address",
    "text_limits",
]
