"""A mailbox with an OAuth2 client in the fetch job: its runs fetch with a refreshed token,
a revoked grant fails the run naming `imap authorize`, and no token or client secret is in
the Dagster event log (every event and log line of the runs) or the task rows."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.fetch.jobs import email_fetch_job
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.oauth2.grants import store_refresh_token
from mail_pipeline_tests.defs.conftest import SECRET, Rig, log_lines, mailbox_row
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.oauth2_server import OAuth2TestServer


def _message(to: str) -> bytes:
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: oauth2\r\nMessage-ID: <oa-{to}>\r\n"
        "Date: Tue, 01 Sep 2026 10:00:00 +0000\r\n\r\nhello\r\n"
    ).encode()


def _event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of the run as stored (messages, metadata, errors), as one text."""
    parts = []
    for entry in instance.all_logs(run_id):
        parts.append(entry.user_message)
        parts.append(repr(entry.dagster_event))
    return "\n".join(parts)


def test_oauth2_runs_keep_tokens_and_secrets_out_of_the_event_log(
    rig: Rig, dovecot: DovecotServer, oauth2_server: OAuth2TestServer
) -> None:
    login = dovecot.new_user().username
    user = rig.store.users.add("olaf", "olaf@example.org")
    client = oauth2_server.register_client()
    manager = EmailConfigManager(rig.store, SECRET)
    manager.update_fetch_config(
        user.id,
        {
            "imap_config": {
                "imap_host": "127.0.0.1",
                "imap_ssl_port": dovecot.imaps_port,
                "username": login,
                "use_ssl": True,
                "ca_file": str(dovecot.ca_cert_path),
                "oauth2_client_id": client.client_id,
                "oauth2_client_secret": client.client_secret,
                "oauth2_token_endpoint": oauth2_server.token_endpoint,
                "oauth2_scopes": ["imap"],
            },
            "filter_config": {"folders": ["INBOX"], "max_age_days": None},
        },
    )
    store_refresh_token(
        rig.store, manager.box, user.id, oauth2_server.issue_refresh_token(client, login)
    )
    dovecot.append(login, _message("olaf@example.org"))
    instance = dg.DagsterInstance.ephemeral()

    ok = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, raise_on_error=False
    )
    assert ok.success
    assert rig.store.messages.count(user.id) == 1
    assert oauth2_server.refresh_count(username=login) == 1

    oauth2_server.revoke_grants(login)
    rig.store.oauth2_grants.clear_access_token(user.id)  # the next run must refresh
    refused = email_fetch_job.execute_in_process(
        resources=rig.resources, instance=instance, raise_on_error=False
    )
    assert refused.get_failed_step_keys() == {fetch_step("report_failed_mailboxes")}
    row = mailbox_row(refused, "olaf")
    assert row["error_kind"] == "auth"
    assert "mail-pipeline imap authorize olaf" in str(row["error"])
    assert any(
        "mail-pipeline imap authorize olaf" in line for line in log_lines(instance, refused.run_id)
    )

    secrets = oauth2_server.issued_secrets()
    assert client.client_secret in secrets and len(secrets) >= 4
    texts = [_event_log_text(instance, run.run_id) for run in (ok, refused)]
    texts += [repr(event) for run in (ok, refused) for event in run.all_events]
    texts += [
        f"{task.error_message} {task.log!r} {task.details!r}"
        for task in rig.store.tasks.recent(limit=20)
    ]
    assert all("olaf" in text for text in texts[:2])  # the runs' events were read
    for text in texts:
        for secret in secrets:
            assert secret not in text
