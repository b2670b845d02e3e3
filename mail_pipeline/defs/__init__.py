"""The Dagster layer: resources, ops, jobs, schedules, sensors and the asset, by domain.

* :mod:`~mail_pipeline.defs.fetch`: ``email_fetch_job`` (lock, cleanup, both branches, release)
  and its schedule and run-status sensors;
* :mod:`~mail_pipeline.defs.imap`: the IMAP branch's ops, ``fetch_mailbox_job`` and its
  partitions;
* :mod:`~mail_pipeline.defs.spool`: the spool branch's ops, ``spool_ingest_job`` and its sensor;
* :mod:`~mail_pipeline.defs.maintenance`: ``cleanup_tasks_job``, its schedule, ``mail_metrics``;
* :mod:`~mail_pipeline.defs.resources`: every resource, built in one place;
* :mod:`~mail_pipeline.defs.definitions`: the code location ``workspace.yaml`` loads.

It is thin on purpose: every op calls one core function (``intake.imap.run``,
``intake.spool.run``, stale-task cleanup, retention) and only adds orchestration — fan-out per
mailbox, the fetch lock, metadata and log lines for the UI.
"""
