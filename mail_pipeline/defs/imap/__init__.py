"""IMAP in Dagster: the IMAP branch of ``email_fetch_job``, ``fetch_mailbox_job`` (one mailbox
per partition) and the sensor that keeps its partitions."""
