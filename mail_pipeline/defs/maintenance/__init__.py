"""Maintenance in Dagster: ``cleanup_tasks_job``, its daily schedule, the ``mail_metrics`` asset.

* ``cleanup_tasks_job`` runs :func:`mail_pipeline.maintenance.retention.run_retention` with a
  :class:`~mail_pipeline.defs.maintenance.ops.RetentionConfig` (the seed's defaults; change
  them in the launchpad or in the schedule's run config). Its output metadata says what was
  deleted; it never touches open tasks. ``cleanup_tasks_schedule`` runs it daily
  (``MAIL_PIPELINE_CLEANUP_CRON``, default ``30 3 * * *``).
* ``mail_metrics`` is an asset (declared with
  :data:`~mail_pipeline.defs.maintenance.assets.mail_metrics_spec`) materialized by the last op
  of every ``email_fetch_job`` run, by every ``spool_ingest_job`` run and by every
  ``cleanup_tasks_job`` run, through an ``AssetMaterialization`` whose numeric metadata is one
  point of the series of :mod:`mail_pipeline.maintenance.metric_points` (ordered, units in
  their keys, counters per interval, zero-only series left out), so the asset's page in the UI
  plots each of them over time; the point also carries the health message.
"""
