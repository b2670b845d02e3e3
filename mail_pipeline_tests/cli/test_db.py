"""``mail-pipeline db upgrade|revision``."""

from __future__ import annotations

import json

from mail_pipeline_tests.cli.conftest import Run


def test_db_upgrade(cli: Run, store_url: str) -> None:
    from alembic.script import ScriptDirectory

    from mail_pipeline.storage.store.store import alembic_config

    head = ScriptDirectory.from_config(alembic_config(store_url)).get_current_head()
    result = cli("db", "upgrade")
    assert result.code == 0 and f"revision {head}" in result.out
    assert cli("db", "revision").out.strip() == head
    data = json.loads(cli("db", "revision", "--json").out)
    assert data["revision"] == head and data["dialect"] in ("sqlite", "postgresql")
