"""Which mailboxes a shard logs a ``last_fetch_ok`` evaluation and a ``fetched_mail``
materialization for: only what is news."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.imap.health import FETCHED_MAIL, mailbox_events
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.storage.store import LastFetch, MailStore, TaskCounters


def _result(user_id: int, name: str, kind: ErrorKind = ErrorKind.NONE) -> MailboxResult:
    error = "credentials refused" if kind is not ErrorKind.NONE else ""
    return MailboxResult(user_id, name, kind, error, (), TaskCounters(), 0.1, ())


def test_a_shard_logs_failures_changes_and_first_fetches_but_not_a_mailbox_still_passing(
    store: MailStore,
) -> None:
    ids = {n: store.users.add(n, f"{n}@example.org").id for n in ("ok", "bad", "healed", "new")}
    ran = LastFetch(0, 0, 0, 0, 0.1, "run-1")
    store.mailboxes.record_success(ids["ok"], ran)
    store.mailboxes.record_failure(ids["bad"], "auth", "no", pause_after_auth_failures=None)
    store.mailboxes.record_failure(ids["healed"], "auth", "no", pause_after_auth_failures=None)
    cli_only = store.users.add("cli", "cli@example.org").id
    store.mailboxes.record_success(cli_only, LastFetch(0, 0, 0, 0, 0.1, ""))  # no Dagster run
    before = store.mailboxes.states([*ids.values(), cli_only])

    # This tick: everyone fetched; only "bad" failed again.
    store.mailboxes.record_success(ids["ok"], ran)
    store.mailboxes.record_success(ids["healed"], ran)
    store.mailboxes.record_success(ids["new"], ran)
    results = [
        _result(ids["ok"], "ok"),
        _result(ids["bad"], "bad", ErrorKind.AUTH),
        _result(ids["healed"], "healed"),
        _result(ids["new"], "new"),
        _result(cli_only, "cli"),
    ]
    events = list(mailbox_events(store, results, before))
    checks = {str(e.partition): e for e in events if isinstance(e, dg.AssetCheckEvaluation)}
    assert sorted(checks) == ["bad", "cli", "healed", "new"]  # "ok" still passes: no news
    assert not checks["bad"].passed and checks["healed"].passed and checks["new"].passed
    # Each successful fetch that is news materializes the mailbox's fetched mail, before its
    # evaluation; the failed one does not (it is left a failed partition).
    materialized = [e for e in events if isinstance(e, dg.AssetMaterialization)]
    assert [e.partition for e in materialized] == ["healed", "new", "cli"]
    assert all(e.asset_key == FETCHED_MAIL for e in materialized)
    for name in ("healed", "new", "cli"):
        assert events.index(next(e for e in materialized if e.partition == name)) < (
            events.index(checks[name])
        )
    # Without the earlier states (the partition job), every mailbox gets its evaluation.
    assert len([e for e in mailbox_events(store, results) if not _is_mat(e)]) == 5
    # Nothing new at all: no events, and no query for states.
    assert list(mailbox_events(store, results[:1], before)) == []


def test_a_mailbox_still_passing_that_saved_mail_is_materialized(store: MailStore) -> None:
    uid = store.users.add("busy", "busy@example.org").id
    ran = LastFetch(0, 0, 0, 0, 0.1, "run-1")
    store.mailboxes.record_success(uid, ran)
    before = store.mailboxes.states([uid])
    store.mailboxes.record_success(uid, ran)
    busy = MailboxResult(uid, "busy", ErrorKind.NONE, "", (), TaskCounters(saved=2), 0.1, ())
    mat, check = mailbox_events(store, [busy], before)
    assert isinstance(mat, dg.AssetMaterialization) and mat.partition == "busy"
    assert mat.metadata["messages_saved"] == dg.MetadataValue.int(2)
    assert isinstance(check, dg.AssetCheckEvaluation) and check.passed


def _is_mat(event: object) -> bool:
    return isinstance(event, dg.AssetMaterialization)
