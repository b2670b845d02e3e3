"""mail_pipeline: brings a service's incoming e-mail (IMAP and a Haraka spool) into one store.

The core (store, parser, save service, spool, IMAP fetcher) has no Dagster imports; the
Dagster layer lives in :mod:`mail_pipeline.dagster_defs` and only calls the core.
"""

__version__ = "0.1.0"
