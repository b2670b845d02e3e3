"""spool_ingest_job (the sensor's runs) records a mail_metrics point, as the fetch job does."""

from __future__ import annotations

import dagster as dg

from mail_pipeline.defs.maintenance.assets import HEALTH_KEY, MAIL_METRICS
from mail_pipeline.defs.spool.jobs import spool_ingest_job
from mail_pipeline.maintenance.metric_points import KEYS
from mail_pipeline_tests.defs.conftest import Rig, materializations
from mail_pipeline_tests.fixtures.spool_files import make_raw, write_pair


def test_every_spool_run_records_a_point(rig: Rig) -> None:
    rig.store.users.add("ann", "ann@example.org")
    for n in range(2):
        write_pair(rig.spool_dir, make_raw(n, to="ann@example.org"), ["ann@example.org"])
    instance = dg.DagsterInstance.ephemeral()
    resources = {k: rig.resources[k] for k in ("store", "attachments", "spool")}

    def run() -> dg.AssetMaterialization:
        result = spool_ingest_job.execute_in_process(resources=resources, instance=instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node("ingest_spool_now")
        assert mat.asset_key == MAIL_METRICS
        return mat

    first = run()
    assert rig.store.messages.count() == 2
    assert first.metadata[HEALTH_KEY].value == "HEALTHY"
    assert KEYS["messages_saved"] not in first.metadata  # the baseline
    # The spool as the run left it: nothing waiting (a zero-only series is left out).
    assert KEYS["spool_backlog"] not in first.metadata
    write_pair(rig.spool_dir, make_raw(7, to="ann@example.org"), ["ann@example.org"])
    second = run()
    assert second.metadata[KEYS["messages_saved"]].value == 1
    assert KEYS["spool_ingest_seconds"] in second.metadata
    assert isinstance(second.metadata[KEYS["spool_ingest_seconds"]], dg.FloatMetadataValue)
    assert len(materializations(instance)) == 2
