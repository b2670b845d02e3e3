"""Text fits the columns: lengths from the models, NUL removed, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mail_pipeline.storage.store import (
    MailStore,
    NewAttachment,
    NewMessage,
    SyncUpdate,
    clean_row,
    clean_text,
    column_length,
    text_limits,
)
from mail_pipeline.storage.store.models import EmailAttachment, EmailMessage, EmailTask


@pytest.fixture
def alice(store: MailStore) -> int:
    return store.users.add("alice", "alice@example.org").id


def test_clean_text_and_clean_row() -> None:
    assert clean_text("a\x00b") == "ab" and clean_text("abcdef", 3) == "abc"
    row = clean_row(
        EmailTask,
        {
            "status": "RUN\x00NING" + "x" * 30,
            "details": {"k\x00": ["v\x00"]},
            "emails_saved": 3,
            "not_a_column": "x\x00",
        },
    )
    assert row["status"] == ("RUNNING" + "x" * 30)[:20]
    assert row["details"] == {"k": ["v"]} and row["emails_saved"] == 3
    assert row["not_a_column"] == "x"  # strings always lose NUL; no column, no cut
    with pytest.raises(KeyError):
        column_length(EmailTask, "nope")


def test_the_store_fits_every_inserted_row_to_the_models_columns(
    store: MailStore, alice: int
) -> None:
    """One place cleans rows on their way in: NUL removed, cut to the String(n) lengths."""
    assert column_length(EmailMessage, "sender") == 320
    assert text_limits(EmailAttachment)["content_type"] == 255
    assert column_length(EmailMessage, "subject") is None  # Text: unbounded
    now = datetime(2026, 9, 4, tzinfo=UTC)
    attachment = NewAttachment(
        filename="n\x00" + "f" * 1200,
        safe_filename="f.txt",
        content_type="text/" + "x" * 300,
        file_size=1,
        file_path="1/aa/aaaa_f.txt",
        is_image=False,
        is_inline=True,
        content_id="c\x00" + "i" * 1100,
        sha256="0" * 64,
    )
    row = NewMessage(
        user_id=alice,
        message_id="m@x",
        dedup_key="mid:m@x",
        subject="s\x00ubject",
        sender="s" * 400 + "@example.net",
        recipients=["a\x00@example.org"],
        cc=[],
        received_at=now,
        sent_at=None,
        raw_content=b"raw\x00",
        html_content="",
        text_content="t\x00",
        source="IMAP_EMAIL_FETCH",
        origin="o" * 700,
        content_hash="0" * 64,
        size=4,
        attachments=(attachment,),
    )
    sync = SyncUpdate(alice, "INBOX", 1, 2, now, failed_uids=((1, "bad\x00 name"),))
    (pk,) = store.messages.insert_batch([row], [sync])
    assert pk is not None
    (stored,) = store.messages.summaries(alice)
    assert stored.sender == "s" * 320 and stored.origin == "o" * 500
    assert stored.subject == "subject" and stored.recipients == ["a@example.org"]
    content = store.messages.get_content(pk)
    assert content["raw_content"] == b"raw\x00" and content["text_content"] == "t"
    (att,) = content["attachments"]
    assert att["filename"] == "n" + "f" * 999 and att["content_type"] == "text/" + "x" * 250
    assert att["content_id"] == "c" + "i" * 997
    position = store.messages.sync_position(alice, "INBOX")
    assert position is not None and position.failed_uids == [{"uid": 1, "reason": "bad name"}]
