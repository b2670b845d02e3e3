"""Mailbox partitions: one per active user with a valid IMAP config (a sensor keeps them)."""

from __future__ import annotations

import dagster as dg

MAILBOX_PARTITIONS = "mailboxes"
mailbox_partitions = dg.DynamicPartitionsDefinition(name=MAILBOX_PARTITIONS)


def run_mailboxes(context: dg.OpExecutionContext) -> frozenset[str] | None:
    """Return the usernames a run of the ``fetched_mail`` asset fetches: None (every mailbox of the
    store) for a run without partitions or over every partition, else the run's partitions
    (a backfill of some mailboxes).

    "Every partition" fetches every mailbox of the store, so a user added since the partitions
    sensor last ran is fetched too.
    """
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    keys = frozenset(context.partition_keys)
    if keys >= set(context.instance.get_dynamic_partitions(MAILBOX_PARTITIONS)):
        return None
    return keys
