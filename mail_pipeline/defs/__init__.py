"""The Dagster layer: resources, ops, jobs, schedules and sensors over the core.

It is thin on purpose: every op calls a core service (store, save service, spool ingest,
mailbox fetcher, task cleanup) and only adds orchestration — fan-out per mailbox, the fetch
lock, metadata for the UI. ``definitions.py`` is what ``workspace.yaml`` loads.
"""
