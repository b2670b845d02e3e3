"""Run email_fetch_job in a separate process (for tests of runs that race or get killed)."""

from __future__ import annotations

import os
from typing import Any

from mail_pipeline.defs.resources import (
    AttachmentsResource,
    FetchSettingsResource,
    ImapResource,
    SpoolResource,
    StoreResource,
)


def run_fetch_job(config: dict[str, Any], start: Any, results: Any) -> None:
    """Build the resources from plain ``config``, wait for ``start``, run, report the run id.

    Optional keys of ``config``: ``dagster_home`` (record the run in that persistent instance,
    so that it is still STARTED there after a ``kill -9``; default an ephemeral instance),
    ``task_timeout_seconds``, ``lock_ttl_seconds``, ``connect_timeout``, ``read_timeout``.
    """
    import dagster as dg

    from mail_pipeline.defs.fetch.jobs import email_fetch_job

    fetch = {k: config[k] for k in ("task_timeout_seconds", "lock_ttl_seconds") if k in config}
    imap = {k: config[k] for k in ("connect_timeout", "read_timeout") if k in config}
    resources = {
        "store": StoreResource(database_url=config["database_url"]),
        "attachments": AttachmentsResource(root=config["attachment_root"], fsync=False),
        "spool": SpoolResource(directory=config["spool_dir"]),
        "imap": ImapResource(secret_key=config["secret_key"], **imap),
        "fetch_settings": FetchSettingsResource(**fetch),
    }
    if "dagster_home" in config:
        os.environ["DAGSTER_HOME"] = config["dagster_home"]
        instance = dg.DagsterInstance.get()
    else:
        instance = dg.DagsterInstance.ephemeral()
    start.wait()
    result = email_fetch_job.execute_in_process(
        resources=resources, instance=instance, raise_on_error=False
    )
    results.put((result.success, result.run_id))
