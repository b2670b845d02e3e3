"""Run email_fetch_job in a separate process (for tests of runs that race each other)."""

from __future__ import annotations

from typing import Any

from mail_pipeline.defs.resources import (
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    SpoolResource,
    StoreResource,
)


def run_fetch_job(config: dict[str, Any], start: Any, results: Any) -> None:
    """Build the resources from plain ``config``, wait for ``start``, run, report the run id."""
    import dagster as dg

    from mail_pipeline.defs.jobs import email_fetch_job

    resources = {
        "store": StoreResource(database_url=config["database_url"]),
        "attachments": AttachmentsResource(root=config["attachment_root"], fsync=False),
        "spool": SpoolResource(directory=config["spool_dir"]),
        "imap": ImapResource(secret_key=config["secret_key"]),
        "fetch_settings": FetchSettingsResource(),
    }
    start.wait()
    result = email_fetch_job.execute_in_process(
        resources=resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    results.put((result.success, result.run_id))
