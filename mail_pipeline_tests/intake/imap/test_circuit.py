"""The circuit breaker's core: recording MailboxResults, the threshold, resume."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import NotFoundError
from mail_pipeline.intake.imap.circuit import MailboxCircuitBreaker
from mail_pipeline.intake.imap.results import ErrorKind, MailboxResult
from mail_pipeline.storage.store import MailStore, TaskCounters


def _result(user_id: int, kind: ErrorKind, error: str = "") -> MailboxResult:
    return MailboxResult(user_id, "dan", kind, error, (), TaskCounters(), 0.1, ())


def test_pauses_after_n_auth_failures_and_resumes(store: MailStore) -> None:
    user = store.users.add("dan", "dan@example.org")
    breaker = MailboxCircuitBreaker(store, auth_failures_to_pause=3)
    decisions = [
        breaker.record(_result(user.id, ErrorKind.AUTH, "login refused")) for _ in range(2)
    ]
    assert all(d is not None and not d.just_paused for d in decisions)
    decision = breaker.record(_result(user.id, ErrorKind.AUTH, "login refused"))
    assert decision is not None and decision.just_paused
    assert "PAUSED after 3 consecutive authentication failures" in decision.log_line()
    assert "imap resume dan" in decision.log_line()
    assert set(breaker.paused()) == {user.id}
    # Further failures while paused do not pause it "again".
    later = breaker.record(_result(user.id, ErrorKind.AUTH, "login refused"))
    assert later is not None and not later.just_paused and later.state.paused
    was, state = breaker.resume("dan")
    assert was and not state.paused and state.consecutive_failures == 0
    assert breaker.paused() == {}
    ok = breaker.record(_result(user.id, ErrorKind.NONE))
    assert ok is not None and ok.state.last_success_at is not None
    with pytest.raises(NotFoundError):
        breaker.resume("nobody")


def test_other_errors_never_pause(store: MailStore) -> None:
    user = store.users.add("eve", "eve@example.org")
    breaker = MailboxCircuitBreaker(store, auth_failures_to_pause=1)
    for kind in (ErrorKind.CONNECT, ErrorKind.TLS, ErrorKind.PROTOCOL, ErrorKind.CONFIG):
        decision = breaker.record(_result(user.id, kind, "x"))
        assert decision is not None and not decision.state.paused
    assert decision is not None and decision.state.consecutive_failures == 4
    # An unknown user's CONFIG error has no mailbox to record.
    assert breaker.record(_result(0, ErrorKind.CONFIG, "no such user")) is None
    assert breaker.record(_result(424242, ErrorKind.CONFIG, "gone")) is None
    never = MailboxCircuitBreaker(store, auth_failures_to_pause=None)
    for _ in range(5):
        d = never.record(_result(user.id, ErrorKind.AUTH, "x"))
    assert d is not None and not d.state.paused


def test_a_threshold_below_one_is_refused() -> None:
    # The threshold's setting is read by the settings loader (platform/test_settings.py).
    with pytest.raises(ValueError):
        MailboxCircuitBreaker.__init__(
            object.__new__(MailboxCircuitBreaker),
            None,  # type: ignore[arg-type]
            auth_failures_to_pause=0,
        )
