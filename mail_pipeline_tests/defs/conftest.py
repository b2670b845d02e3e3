"""Fixtures for the Dagster layer: resources over a fresh store, a spool, and Dovecot users;
and helpers that read what a run recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mail_pipeline.defs.fetch.assets import fetch_step
from mail_pipeline.defs.maintenance.assets import MAIL_METRICS
from mail_pipeline.defs.resources import (
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    SpoolResource,
    StoreResource,
)
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.fixtures.spool_files import make_spool

SECRET = "dagster layer test passphrase"


@dataclass
class Rig:
    """Everything a job run needs: the resources and handles on what they point at."""

    store: MailStore
    spool_dir: Path
    attachment_root: Path
    resources: dict[str, Any]

    def add_imap_user(
        self, dovecot: DovecotServer, name: str, *, password: str | None = None, **imap_options: Any
    ) -> tuple[int, str]:
        """Create a user whose mailbox is a fresh Dovecot user; return (user id, imap login)."""
        mail_user = dovecot.new_user()
        user = self.store.users.add(name, f"{name}@example.org")
        EmailConfigManager(self.store, SECRET).update_fetch_config(
            user.id,
            {
                "imap_config": {
                    "imap_host": "127.0.0.1",
                    "imap_ssl_port": dovecot.imaps_port,
                    "username": mail_user.username,
                    "password": password or mail_user.password,
                    "use_ssl": True,
                    "ca_file": str(dovecot.ca_cert_path),
                    **imap_options,
                },
                "filter_config": {"folders": ["INBOX"], "max_age_days": None},
            },
        )
        return user.id, mail_user.username


@pytest.fixture
def rig(store_url: str, tmp_path: Path) -> Iterator[Rig]:
    store = MailStore(store_url)
    spool_dir = make_spool(tmp_path / "spool")
    attachment_root = tmp_path / "attachments"
    resources = {
        "store": StoreResource(database_url=store_url),
        "attachments": AttachmentsResource(root=str(attachment_root), fsync=False),
        "spool": SpoolResource(directory=str(spool_dir)),
        "imap": ImapResource(secret_key=SECRET, connect_timeout=5, read_timeout=10),
        "fetch_settings": FetchSettingsResource(),
    }
    yield Rig(store, spool_dir, attachment_root, resources)
    store.dispose()


def output_metadata(result: dg.ExecuteInProcessResult, step_key: str) -> dict[str, object]:
    """The metadata values of the (single) output of step ``step_key``, as plain values."""
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT" and event.step_key == step_key:
            data = event.event_specific_data.metadata  # type: ignore[union-attr]
            return {key: value.value for key, value in data.items()}
    raise AssertionError(f"no output of {step_key}")


def mailbox_row(result: dg.ExecuteInProcessResult, user: str) -> dict[str, object]:
    """The row of ``user`` in the ``mailbox_results`` table of the run's shard steps."""
    for event in result.all_events:
        if event.event_type_value == "STEP_OUTPUT" and (event.step_key or "").startswith(
            fetch_step("fetch_mailbox_shard[")
        ):
            table = event.event_specific_data.metadata["mailbox_results"]  # type: ignore[union-attr]
            assert isinstance(table, dg.TableMetadataValue)
            for record in table.records:
                if record.data["user"] == user:
                    return dict(record.data)
    raise AssertionError(f"no shard row of {user}")


def materializations(instance: dg.DagsterInstance) -> list[dict[str, object]]:
    """The metadata of every mail_metrics materialization in ``instance``, newest first."""
    records = instance.fetch_materializations(MAIL_METRICS, limit=100).records
    out: list[dict[str, object]] = []
    for record in records:
        mat = record.asset_materialization
        assert mat is not None
        out.append({k: v.value for k, v in mat.metadata.items()})
    return out


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The user messages of every log entry of run ``run_id``."""
    return [entry.user_message for entry in instance.all_logs(run_id)]
