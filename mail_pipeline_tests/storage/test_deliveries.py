"""Deliveries: the dedup key of a message, and the counts of a batch's outcomes."""

from __future__ import annotations

from mail_pipeline.mime import parse_message
from mail_pipeline.storage.deliveries import (
    BatchResult,
    Delivery,
    DeliveryResult,
    Outcome,
    dedup_key,
)
from mail_pipeline.storage.store import EmailSource

WITH_ID = b"Message-ID: <a1@example.org>\r\nSubject: hi\r\nFrom: a@example.org\r\n\r\nbody\r\n"
WITHOUT_ID = b"Subject: hi\r\nFrom: a@example.org\r\n\r\nbody\r\n"


def test_the_key_is_the_message_id_or_else_the_content_hash() -> None:
    with_id, without_id = parse_message(WITH_ID), parse_message(WITHOUT_ID)
    assert dedup_key(with_id) == f"mid:{with_id.message_id}"
    assert with_id.message_id and with_id.message_id in dedup_key(with_id)
    assert dedup_key(without_id) == f"sha256:{without_id.content_hash}"
    delivery = Delivery(7, with_id, EmailSource.IMAP)
    assert delivery.key == (7, dedup_key(with_id))
    assert Delivery(8, with_id, EmailSource.HARAKA).key != delivery.key  # once per user


def test_a_batch_counts_its_outcomes() -> None:
    batch = BatchResult(
        [
            DeliveryResult(Outcome.SAVED, message_pk=1),
            DeliveryResult(Outcome.DUPLICATE),
            DeliveryResult(Outcome.SAVED, message_pk=2),
            DeliveryResult(Outcome.FAILED, error="ValueError: bad"),
        ]
    )
    assert (batch.saved, batch.duplicates, batch.failed) == (2, 1, 1)
    assert (BatchResult().saved, BatchResult().duplicates, BatchResult().failed) == (0, 0, 0)
