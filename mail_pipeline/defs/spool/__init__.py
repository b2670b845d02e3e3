"""The Haraka spool in Dagster: the spool branch of ``email_fetch_job``, ``spool_ingest_job``
and the sensor that starts it when new mail is in ``inbox/``."""
