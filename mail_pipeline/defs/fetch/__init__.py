"""``email_fetch_job``: the fetch lock, stale-task cleanup, both branches, the release.

The IMAP branch's ops are in :mod:`mail_pipeline.defs.imap`, the spool branch's in
:mod:`mail_pipeline.defs.spool`; this package holds what spans both.
"""
