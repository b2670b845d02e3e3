"""Which mailboxes a shard logs a ``last_fetch_ok`` evaluation for: only what is news."""

from __future__ import annotations

from mail_pipeline.defs.imap.health import mailbox_events
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
    events = {str(e.partition): e for e in mailbox_events(store, results, before)}
    assert sorted(events) == ["bad", "cli", "healed", "new"]  # "ok" still passes: no news
    assert not events["bad"].passed and events["healed"].passed and events["new"].passed
    # Without the earlier states (the partition job), every mailbox gets its evaluation.
    assert len(list(mailbox_events(store, results))) == 5
    # Nothing new at all: no events, and no query for states.
    assert list(mailbox_events(store, results[:1], before)) == []
