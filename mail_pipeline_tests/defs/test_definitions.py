"""The code location's snapshot: every job, schedule, sensor, asset and resource it exposes.

The description of ``mail_pipeline.defs.definitions`` is compared with the checked-in
``snapshots/code_location.json``. Job, op and sensor names are what the UI, the sensors' run
keys and the operators' habits depend on, so a change of them must be on purpose: when it is,
regenerate the snapshot with

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest -p no:cacheprovider \
        mail_pipeline_tests/defs/test_definitions.py

and commit the new file with the change.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mail_pipeline.defs.definitions import defs as load_code_location
from mail_pipeline.defs.fetch.sensors import MONITORED_JOBS

SNAPSHOT = Path(__file__).parent / "snapshots" / "code_location.json"
UPDATE = "UPDATE_SNAPSHOTS"
REGENERATE = (
    f"{UPDATE}=1 .venv/bin/pytest -p no:cacheprovider mail_pipeline_tests/defs/test_definitions.py"
)


def _graph(
    graph: dg.GraphDefinition, prefix: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every op of ``graph`` (graphs within it walked, their ops named ``graph.op``) with its
    resources, and every dependency edge."""
    ops: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for node in graph.nodes_in_topological_order:
        if isinstance(node.definition, dg.GraphDefinition):
            inner_ops, inner_edges = _graph(node.definition, f"{prefix}{node.name}.")
            ops += inner_ops
            edges += inner_edges
            continue
        ops.append(
            {
                "name": prefix + node.name,
                "op": node.definition.name,
                "resources": sorted(getattr(node.definition, "required_resource_keys", ())),
            }
        )
    for invocation, inputs in graph.dependencies.items():
        target = invocation if isinstance(invocation, str) else invocation.alias or invocation.name
        for input_name, dep in inputs.items():
            for upstream in dep.get_node_dependencies():
                edges.append(
                    {
                        "from": f"{prefix}{upstream.node}.{upstream.output}",
                        "to": f"{prefix}{target}.{input_name}",
                        "kind": type(dep).__name__,
                    }
                )
    return ops, edges


def _job(job: dg.JobDefinition) -> dict[str, Any]:
    """Name, tags, executor, partitions, and every op with its dependency edges."""
    ops, edges = _graph(job.graph)
    partitions = job.partitions_def
    return {
        "name": job.name,
        "tags": dict(sorted(job.tags.items())),
        "executor": job.executor_def.name,
        "partitions": getattr(partitions, "name", None) if partitions else None,
        "ops": sorted(ops, key=lambda o: o["name"]),
        "edges": sorted(edges, key=lambda e: (e["to"], e["from"])),
    }


def _sensor(sensor: dg.SensorDefinition) -> dict[str, Any]:
    """Name, kind, default status, the jobs it starts (by its targets, since a sensor may name
    its job instead of holding it), and the jobs a run-status sensor watches (Dagster exposes
    no public accessor for those: the module's list is recorded)."""
    described: dict[str, Any] = {
        "name": sensor.name,
        "type": sensor.sensor_type.value,
        "default_status": sensor.default_status.value,
        "minimum_interval_seconds": sensor.minimum_interval_seconds,
        "jobs": sorted(target.job_name for target in sensor.targets),
        "resources": sorted(sensor.required_resource_keys),
    }
    if isinstance(sensor, dg.RunStatusSensorDefinition):
        described["monitored_jobs"] = sorted(job.name for job in MONITORED_JOBS)
    return described


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """Return a sorted, JSON-able description of ``defs``."""
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    schedules = [defs.resolve_schedule_def(s.name) for s in defs.schedules or ()]
    sensors = [defs.resolve_sensor_def(s.name) for s in defs.sensors or ()]
    return {
        "jobs": sorted((_job(job) for job in jobs), key=lambda j: j["name"]),
        "schedules": sorted(
            (
                {
                    "name": s.name,
                    "cron": s.cron_schedule,
                    "timezone": s.execution_timezone,
                    "job": s.job_name,
                    "default_status": s.default_status.value,
                }
                for s in schedules
            ),
            key=lambda s: s["name"],
        ),
        "sensors": sorted((_sensor(s) for s in sensors), key=lambda s: s["name"]),
        "assets": sorted(spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()),
        "resources": sorted(defs.resources or {}),
    }


@pytest.fixture
def default_crons(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crons of the settings unset: the snapshot holds the defaults."""
    monkeypatch.delenv("MAIL_PIPELINE_FETCH_CRON", raising=False)
    monkeypatch.delenv("MAIL_PIPELINE_CLEANUP_CRON", raising=False)


def test_the_code_location_matches_its_snapshot(default_crons: None) -> None:
    defs = load_code_location()
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)
    actual = json.dumps(describe(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(actual)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{SNAPSHOT.name} (checked in)",
                tofile="mail_pipeline.defs.definitions",
            )
        )
        pytest.fail(
            f"the code location changed:\n{diff}\nIf the change is meant, regenerate "
            f"the snapshot ({REGENERATE}) and commit it.",
            pytrace=False,
        )


def test_loading_the_code_location_warns_of_nothing_in_beta(default_crons: None) -> None:
    """No BetaWarning about ``owners``: Dagster raises it when it copies a sensor that holds
    a job object to bind the resources (haraka_spool_sensor names its job instead)."""
    with warnings.catch_warnings():
        for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
            warnings.simplefilter("error", category)
        defs = load_code_location()
        assert isinstance(defs, dg.Definitions)
        repository = defs.get_repository_def()
        for job in repository.get_all_jobs():
            defs.resolve_job_def(job.name)
    sensor = repository.get_sensor_def("haraka_spool_sensor")
    assert sensor.job_name == "spool_ingest_job"


def test_the_crons_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_FETCH_CRON", "*/7 * * * *")
    monkeypatch.setenv("MAIL_PIPELINE_CLEANUP_CRON", "0 4 * * *")
    crons = {s["name"]: s["cron"] for s in describe(load_code_location())["schedules"]}
    assert crons == {"email_fetch_schedule": "*/7 * * * *", "cleanup_tasks_schedule": "0 4 * * *"}
