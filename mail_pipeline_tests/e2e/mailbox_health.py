"""GraphQL reads of the ``mailbox`` asset's health, for the end-to-end tests.

What the UI's asset pages show: the partitions of ``fetched_mail`` by status (Partitions tab,
and what the backfill dialog offers as failed), and for ``mailbox`` under Checks →
``last_fetch_ok`` which partitions (mailboxes) pass or fail, and each partition's latest
evaluation with its metadata.
"""

from __future__ import annotations

from typing import Any

from mail_pipeline.defs.imap.health import FETCHED_MAIL, LAST_FETCH_OK, MAILBOX
from mail_pipeline_tests.e2e.conftest import DagsterApi

_KEY = {"path": list(MAILBOX.path)}


def check_partition_statuses(api: DagsterApi) -> dict[str, list[str]]:
    """Return ``{"succeeded": [...], "failed": [...]}``: the mailboxes whose latest
    ``last_fetch_ok`` evaluation passed / failed (empty lists before any evaluation)."""
    data = api.query(
        """
        query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
          __typename
          ... on AssetNode { assetChecksOrError { __typename
            ... on AssetChecks { checks { name partitionStatuses { __typename
              ... on AssetCheckDefaultPartitionStatuses {
                succeededPartitions failedPartitions } } } } } } } }""",
        {"key": _KEY},
    )
    node = api._ok(data["assetNodeOrError"], "AssetNode")
    checks = api._ok(node["assetChecksOrError"], "AssetChecks")["checks"]
    (check,) = [c for c in checks if c["name"] == LAST_FETCH_OK]
    statuses = check["partitionStatuses"] or {}
    return {
        "succeeded": sorted(statuses.get("succeededPartitions") or []),
        "failed": sorted(statuses.get("failedPartitions") or []),
    }


def asset_partition_statuses(api: DagsterApi) -> dict[str, list[str]]:
    """Return the ``fetched_mail`` asset's partitions by status, as its Partitions tab and the
    backfill dialog ("failed and missing") read them: ``materialized``, ``failed``,
    ``materializing`` and ``missing``."""
    data = api.query(
        """
        query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
          __typename
          ... on AssetNode { assetPartitionStatuses { __typename
            ... on DefaultPartitionStatuses { materializedPartitions failedPartitions
              materializingPartitions unmaterializedPartitions } } } } }""",
        {"key": {"path": list(FETCHED_MAIL.path)}},
    )
    node = api._ok(data["assetNodeOrError"], "AssetNode")
    statuses = api._ok(node["assetPartitionStatuses"], "DefaultPartitionStatuses")
    return {
        "materialized": sorted(statuses["materializedPartitions"]),
        "failed": sorted(statuses["failedPartitions"]),
        "materializing": sorted(statuses["materializingPartitions"]),
        "missing": sorted(statuses["unmaterializedPartitions"]),
    }


def latest_evaluation(api: DagsterApi, mailbox: str) -> dict[str, Any] | None:
    """Return the latest ``last_fetch_ok`` execution of ``mailbox``'s partition: ``runId``,
    ``status`` and ``evaluation`` (``success``, ``description``, ``metadata`` as a dict of
    text values), or None when there is none."""
    data = api.query(
        """
        query($key: AssetKeyInput!, $name: String!, $partition: String) {
          assetCheckExecutions(assetKey: $key, checkName: $name, limit: 1,
                               partition: $partition) {
            runId status partition
            evaluation { success description
              metadataEntries { label
                ... on TextMetadataEntry { text }
                ... on IntMetadataEntry { intValue }
                ... on BoolMetadataEntry { boolValue } } } } }""",
        {"key": _KEY, "name": LAST_FETCH_OK, "partition": mailbox},
    )
    executions: list[dict[str, Any]] = data["assetCheckExecutions"]
    if not executions:
        return None
    latest = executions[0]
    evaluation = latest["evaluation"]
    if evaluation is not None:
        evaluation["metadata"] = {
            e["label"]: next((e[k] for k in ("text", "intValue", "boolValue") if k in e), None)
            for e in evaluation.pop("metadataEntries")
        }
    return latest
