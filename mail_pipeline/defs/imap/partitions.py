"""Mailbox partitions: one per active user with a valid IMAP config (a sensor keeps them)."""

from __future__ import annotations

import dagster as dg

MAILBOX_PARTITIONS = "mailboxes"
mailbox_partitions = dg.DynamicPartitionsDefinition(name=MAILBOX_PARTITIONS)
