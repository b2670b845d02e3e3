"""The mail_metrics asset: every fetch run materializes the numbers the UI plots."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.defs.maintenance.assets import MAIL_METRICS
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.defs.conftest import Rig, materializations
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.maintenance.test_metrics import PLOTTED


def _message(n: int, to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: m {n}\r\nMessage-ID: <cb-{n}-{to}>\r\n"
        f"Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello {n}\r\n"
    ).encode()


def test_every_fetch_run_materializes_the_metrics_the_ui_plots(
    rig: Rig, dovecot: DovecotServer
) -> None:
    user, login = rig.add_imap_user(dovecot, "mia")
    dovecot.append(login, _message(1, "mia@example.org"))
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        result = email_fetch_job.execute_in_process(resources=rig.resources, instance=instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node("release_fetch_lock")
        assert mat.asset_key == MAIL_METRICS
        assert set(mat.metadata) >= PLOTTED
        for value in mat.metadata.values():
            assert isinstance(value, dg.IntMetadataValue | dg.FloatMetadataValue)
    history = materializations(instance)
    assert len(history) == 2
    assert history[0]["imap_runs"] == 2 and history[0]["imap_saved_per_run"] == 0.5
    assert history[0]["mailboxes"] == 1 and history[0]["mailboxes_paused"] == 0
    state = rig.store.mailboxes.get(user)
    assert state is not None and state.last_success_at is not None


def test_metrics_survive_a_store_without_mailboxes(store: MailStore) -> None:
    # The asset's numbers never miss a key, even on an empty store.
    from mail_pipeline.maintenance.metrics import compute_metrics

    assert PLOTTED - {
        "spool_inbox_ready",
        "spool_failed",
        "spool_unmatched",
        "spool_oldest_inbox_age_seconds",
    } <= set(compute_metrics(store).numeric())
