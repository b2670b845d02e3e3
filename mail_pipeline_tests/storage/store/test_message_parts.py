"""Big parts of messages stored apart, in pieces (mail_pipeline.storage.store.message_parts)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import DBAPIError

from mail_pipeline.storage.store import MailStore, NewAttachment
from mail_pipeline.storage.store.message_parts import CHUNK, STREAM_ABOVE, streamed
from mail_pipeline.storage.store.models import EmailMessage, EmailMessagePart
from mail_pipeline_tests.fixtures.message_rows import message_row


def _big(n: int, size: int) -> bytes:
    # not a multiple of the chunk, and different for each message
    return bytes([n]) * 7 + os.urandom(size - 7)


def test_only_messages_from_the_threshold_up_are_streamed() -> None:
    assert not streamed(b"x" * (STREAM_ABOVE - 1))
    assert streamed(b"x" * STREAM_ABOVE)


def test_a_big_message_is_stored_whole_beside_small_ones(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    big = _big(1, STREAM_ABOVE + CHUNK + 12345)
    exact = _big(2, STREAM_ABOVE)
    rows = [
        message_row(alice, 0),
        replace(message_row(alice, 1), raw_content=big, size=len(big)),
        replace(message_row(alice, 2), raw_content=exact, size=len(exact)),
    ]
    ids = store.messages.insert_batch(rows)
    assert all(pk is not None for pk in ids)
    stored = [store.messages.get_content(pk)["raw_content"] for pk in ids if pk is not None]
    assert stored == [b"raw", big, exact]


def test_a_duplicate_big_message_keeps_the_first_copy(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    first = _big(3, STREAM_ABOVE + 1)
    again = _big(4, STREAM_ABOVE + 1)
    (pk,) = store.messages.insert_batch([replace(message_row(alice, 1), raw_content=first)])
    # the same key again, in another batch and twice in one batch: never written over
    assert store.messages.insert_batch([replace(message_row(alice, 1), raw_content=again)]) == [
        None
    ]
    twice = [replace(message_row(alice, 2), raw_content=first)] * 2
    new, dup = store.messages.insert_batch(twice)
    assert dup is None and new is not None
    assert pk is not None
    assert store.messages.get_content(pk)["raw_content"] == first
    assert store.messages.get_content(new)["raw_content"] == first


def test_a_failed_batch_leaves_no_row_and_no_large_object(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    big = _big(5, STREAM_ABOVE + 10)
    # The attachment rows go in after the raw bytes were written: a refused one rolls back all.
    refused = NewAttachment("a.txt", "a.txt", "text/plain", 1, None, False, False, None, "0")  # type: ignore[arg-type]
    with pytest.raises(DBAPIError):
        store.messages.insert_batch(
            [replace(message_row(alice, 1), raw_content=big, attachments=(refused,))]
        )
    assert store.messages.count() == 0
    _assert_no_large_object(store)


def test_the_large_object_is_gone_after_the_commit(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    big = _big(6, STREAM_ABOVE + 10)
    (pk,) = store.messages.insert_batch([replace(message_row(alice, 1), raw_content=big)])
    assert pk is not None
    _assert_no_large_object(store)


def _assert_no_large_object(store: MailStore) -> None:
    if store.dialect != "postgresql":
        return
    with store.engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM pg_largeobject_metadata"))
        assert left.scalar_one() == 0


def test_the_parts_live_apart_and_go_with_their_message(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    big = _big(7, STREAM_ABOVE)
    # a body longer than a chunk, with characters of 1 to 4 UTF-8 bytes across chunk edges
    html = "<p>" + "aé€🙂" * (STREAM_ABOVE // 4 + 3) + "</p>"
    text_body = "a\x00b" + "ü" * STREAM_ABOVE  # NUL leaves a body as it leaves a column
    row = replace(message_row(alice, 1), raw_content=big, html_content=html, text_content=text_body)
    (pk,) = store.messages.insert_batch([row])
    assert pk is not None
    with store.engine.begin() as connection:
        in_row = connection.execute(
            select(EmailMessage.raw_content, EmailMessage.html_content, EmailMessage.text_content)
        ).one()
        assert tuple(in_row) == (b"", "", "")
        names = connection.execute(select(EmailMessagePart.name)).scalars().all()
        assert sorted(names) == ["html", "raw", "text"]
    content = store.messages.get_content(pk)
    assert content["raw_content"] == big
    assert content["html_content"] == html
    assert content["text_content"] == "ab" + "ü" * STREAM_ABOVE
    with store.engine.begin() as connection:
        connection.execute(delete(EmailMessage).where(EmailMessage.id == pk))
        assert connection.execute(select(func.count()).select_from(EmailMessagePart)).scalar() == 0


def test_small_bodies_of_a_big_message_stay_in_the_row(store: MailStore) -> None:
    alice = store.users.add("alice", "alice@example.org").id
    big = _big(8, STREAM_ABOVE)
    (pk,) = store.messages.insert_batch([replace(message_row(alice, 1), raw_content=big)])
    assert pk is not None
    with store.engine.begin() as connection:
        names = connection.execute(select(EmailMessagePart.name)).scalars().all()
        assert names == ["raw"]
    assert store.messages.get_content(pk)["text_content"] == "t"
