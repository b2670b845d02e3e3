"""The ``mailbox`` asset: one partition per mailbox, with its health check ``last_fetch_ok``.

The fetches log the events (see :mod:`mail_pipeline.defs.imap.health`); the check can also be
run from the UI (asset ``mailbox`` → Checks → Execute) for a partition: it reads the mailbox's
state in the store, so it says what the last fetch of any job or of the CLI did.
"""

import warnings

import dagster as dg

from mail_pipeline.defs.imap.health import LAST_FETCH_OK, MAILBOX, health_metadata
from mail_pipeline.defs.imap.partitions import mailbox_partitions
from mail_pipeline.defs.resources import StoreResource
from mail_pipeline.storage.store import MailStore

mailbox_spec = dg.AssetSpec(
    MAILBOX,
    partitions_def=mailbox_partitions,
    group_name="mailboxes",
    kinds={"imap"},
    description=(
        "One user's IMAP mailbox (one partition per mailbox). Its health is the check "
        "last_fetch_ok: per partition, whether the last fetch succeeded, with the last "
        "successful fetch, the last error and since when the mailbox has been failing. Fetch a "
        "failed mailbox again with a backfill of the failed partitions of fetched_mail."
    ),
)


def evaluate_mailbox(store: MailStore, username: str) -> dg.AssetCheckResult:
    """Return ``last_fetch_ok`` for ``username``'s mailbox: passed when it is not failing
    (its last fetch succeeded; a mailbox never fetched is not known to work); metadata: its
    health (:func:`~mail_pipeline.defs.imap.health.health_metadata`).

    Raises:
        NotFoundError: no such user.
    """
    state = store.mailboxes.get(store.users.get(username).id)
    failing = state is None or state.failing_since is not None
    if state is None:
        description = "never fetched"
    elif failing:
        description = f"{state.last_error_kind}: {state.last_error}"
    else:
        description = "fetched"
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=health_metadata(state),
    )


with warnings.catch_warnings():
    # partitioned asset checks are a preview feature of Dagster: said once, here
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=MAILBOX,
        name=LAST_FETCH_OK,
        partitions_def=mailbox_partitions,
        description=(
            "The last fetch of this mailbox succeeded (from the mailbox's state in the store)."
        ),
    )
    def mailbox_last_fetch_ok(
        context: dg.AssetCheckExecutionContext, store: StoreResource
    ) -> dg.AssetCheckResult:
        """Pass when the partition's mailbox is not failing; metadata: its health.

        Raises:
            NotFoundError: the partition names no user.
        """
        return evaluate_mailbox(store.get(), context.partition_key)
