"""Shared fixtures: the store on SQLite and on a real PostgreSQL server.

Every test that asks for ``store`` (or ``store_url``) runs twice: once on a SQLite file and
once on the session's PostgreSQL server. Both start from the migrated schema.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mail_pipeline.storage.store import MailStore

if TYPE_CHECKING:
    from mail_pipeline_tests.fixtures.postgres import PostgresServer

pytest_plugins = [
    "mail_pipeline_tests.fixtures.servers",
    "mail_pipeline_tests.fixtures.postgres",
    "mail_pipeline_tests.fixtures.haraka",
    "mail_pipeline_tests.fixtures.dovecot",
    "mail_pipeline_tests.fixtures.oauth2_server",
    "mail_pipeline_tests.fixtures.faults",
    "mail_pipeline_tests.fixtures.redis",
]

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    store = MailStore(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_server: PostgresServer) -> str:
    name = postgres_server.create_database()
    store = MailStore(postgres_server.url(name))
    store.upgrade()
    store.dispose()
    return name


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, migrated, empty store on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "store.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template=request.getfixturevalue("_postgres_template"))
    return server.url(name)


@pytest.fixture
def store(store_url: str) -> Iterator[MailStore]:
    """A fresh, migrated, empty :class:`MailStore` on each backend."""
    mail_store = MailStore(store_url)
    yield mail_store
    mail_store.dispose()


@pytest.fixture
def attachment_root(tmp_path: Path) -> Path:
    """An empty attachment root directory."""
    root = tmp_path / "attachments"
    root.mkdir()
    return root
