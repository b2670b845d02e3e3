"""The mailbox state: failure streaks, the breaker's pause, resume, on both databases."""

from __future__ import annotations

import pytest

from mail_pipeline.errors import NotFoundError
from mail_pipeline.storage.store import MailStore
from mail_pipeline.storage.store.mailbox_state import MAX_ERROR_CHARS


def test_mailbox_state_streaks_pause_and_resume(store: MailStore) -> None:
    user = store.users.add("mb", "mb@example.org")
    boxes = store.mailboxes
    assert boxes.get(user.id) is None
    boxes.record_failure(user.id, "connect", "refused", pause_after_auth_failures=2)
    state = boxes.record_failure(user.id, "auth", "bad password", pause_after_auth_failures=2)
    assert (state.consecutive_failures, state.consecutive_auth_failures) == (2, 1)
    assert not state.paused
    # A connect failure in between neither counts nor breaks the authentication streak.
    boxes.record_failure(user.id, "connect", "refused", pause_after_auth_failures=2)
    state = boxes.record_failure(user.id, "auth", "bad password", pause_after_auth_failures=2)
    assert state.paused and state.paused_at is not None
    assert "2 consecutive authentication failures" in state.paused_reason
    assert boxes.paused_user_ids() == {user.id}
    assert [m.username for m in boxes.all(paused_only=True)] == ["mb"]
    was, state = boxes.resume(user.id)
    assert was and not state.paused and state.consecutive_auth_failures == 0
    assert boxes.resume(user.id)[0] is False
    state = boxes.record_success(user.id)
    assert state.last_success_at is not None and state.last_error == ""
    with pytest.raises(NotFoundError):
        boxes.record_success(99_999)
    with pytest.raises(ValueError):
        boxes.record_failure(user.id, "auth", "x", pause_after_auth_failures=0)


def test_a_success_resets_the_streaks_and_never_pauses(store: MailStore) -> None:
    user = store.users.add("ok", "ok@example.org")
    for _ in range(2):
        store.mailboxes.record_failure(user.id, "auth", "no", pause_after_auth_failures=3)
    store.mailboxes.record_success(user.id)
    for _ in range(2):
        state = store.mailboxes.record_failure(user.id, "auth", "no", pause_after_auth_failures=3)
    assert not state.paused and state.consecutive_auth_failures == 2


def test_error_text_loses_its_nul_and_is_capped(store: MailStore) -> None:
    # An IMAP server's answer is stored as the last error; PostgreSQL text cannot hold NUL.
    user = store.users.add("nul", "nul@example.org")
    state = store.mailboxes.record_failure(
        user.id, "au\x00th", "NO [AUTH\x00] refused", pause_after_auth_failures=None
    )
    assert state.last_error_kind == "auth" and state.last_error == "NO [AUTH] refused"
    state = store.mailboxes.record_failure(
        user.id, "x" * 30, "e" * (MAX_ERROR_CHARS + 5), pause_after_auth_failures=None
    )
    assert state.last_error_kind == "x" * 20 and len(state.last_error) == MAX_ERROR_CHARS
    state = store.mailboxes.pause(user.id, "paused by\x00 hand")
    assert state.paused_reason == "paused by hand"


def test_failing_since_is_the_first_failure_of_the_streak(store: MailStore) -> None:
    user = store.users.add("fs", "fs@example.org")
    other = store.users.add("fs2", "fs2@example.org")
    boxes = store.mailboxes
    first = boxes.record_failure(user.id, "connect", "down", pause_after_auth_failures=None)
    assert first.failing_since is not None and first.failing_since == first.last_failure_at
    again = boxes.record_failure(user.id, "auth", "refused", pause_after_auth_failures=None)
    assert again.failing_since == first.failing_since
    assert again.last_failure_at is not None and again.last_failure_at >= first.failing_since
    # resuming fetches nothing: the mailbox is still failing since then
    assert boxes.resume(user.id)[1].failing_since == first.failing_since
    healed = boxes.record_success(user.id)
    assert healed.failing_since is None
    anew = boxes.record_failure(user.id, "connect", "down", pause_after_auth_failures=None)
    assert anew.failing_since is not None and anew.failing_since >= first.failing_since
    boxes.record_success(other.id)
    states = boxes.states([user.id, other.id, 99_999])
    assert set(states) == {user.id, other.id}
    assert states[user.id].failing_since == anew.failing_since
    assert states[other.id].failing_since is None and states[other.id].username == "fs2"
    assert boxes.states([]) == {}
