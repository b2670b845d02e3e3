"""The spool's folder layout: opening it, its settings (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.layout import Spool
from mail_pipeline_tests.fixtures.spool_files import all_files


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool").open()


def test_open_creates_folders_and_refuses_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Spool(root).open()
    assert sorted(os.listdir(root)) == sorted(
        ["inbox", "processed", "failed", "unmatched", "tmp", "claims"]
    )
    other = tmp_path / "s2"
    other.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, other / "inbox")
    with pytest.raises(SpoolError, match="symlink"):
        Spool(other).open()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Spool("/tmp/x", lease_seconds=0)
    with pytest.raises(ValueError):
        Spool("/tmp/x", legacy_grace_seconds=-1)


def test_all_files_helper_is_complete(spool: Spool) -> None:
    assert set(all_files(spool.root)) == {
        "inbox",
        "failed",
        "unmatched",
        "tmp",
        "processed",
        "claims",
    }
