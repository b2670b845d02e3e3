"""``mail-pipeline spool``: ingest, status, retry-failed, reingest-unmatched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mail_pipeline_tests.cli.conftest import Run
from mail_pipeline_tests.fixtures.faults import StorageFault
from mail_pipeline_tests.fixtures.spool_files import all_files, make_raw, write_pair


def test_ingest_status_and_requeue(cli: Run, tmp_path: Path) -> None:
    spool = tmp_path / "home" / "spool"
    assert cli("users", "add", "alice", "alice@example.org").code == 0
    write_pair(spool, make_raw(1), ["alice@example.org"])
    write_pair(spool, make_raw(2), ["nobody@example.org"])
    broken = write_pair(spool, b"\x00garbage", ["alice@example.org"])

    status = cli("spool", "status")
    assert status.code == 0
    (ready,) = [line for line in status.out.splitlines() if "inbox (ready)" in line]
    assert ready.split()[-1] == "3"
    data = json.loads(cli("spool", "status", "--json").out)
    assert data["inbox_ready"] == 3 and data["spool_dir"] == str(spool)

    result = cli("spool", "ingest", "--batch-size", "2")
    assert result.code == 0, result.err
    line = result.out.splitlines()[0]
    assert "found 3, saved 1, duplicates 0, failed 1, unmatched 1" in line
    assert "not_a_message" in result.out
    assert (tmp_path / "home" / "attachments").is_dir()

    tasks = cli("tasks", "list")
    assert "HARAKA_EMAIL_FETCH" in tasks.out and "COMPLETED" in tasks.out

    status = cli("spool", "status")
    assert "failed" in status.out and "unmatched" in status.out

    assert cli("aliases", "add", "alice", "nobody@example.org").code == 0
    moved = cli("spool", "reingest-unmatched")
    assert moved.code == 0 and "moved 1 unmatched" in moved.out
    again = cli("spool", "ingest")
    assert "found 1, saved 1" in again.out

    retry = cli("spool", "retry-failed")
    assert retry.code == 0 and "moved 1 failed" in retry.out
    assert f"{broken}.meta" in all_files(spool)["inbox"]
    last = cli("spool", "ingest")
    assert "found 1, saved 0, duplicates 0, failed 1" in last.out
    assert all_files(spool)["claims"] == []


def test_bad_input_is_one_line_exit_2(cli: Run) -> None:
    for args in (
        ("spool", "ingest", "--batch-size", "0"),
        ("spool", "ingest", "--max-size", "-1"),
        ("spool", "ingest", "--batch-size", "x"),
    ):
        result = cli(*args)
        assert result.code == 2
        assert len(result.err.strip().splitlines()) == 1


def test_unusable_spool_is_reported(cli: Run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MAIL_PIPELINE_SPOOL_DIR", str(blocker))
    result = cli("spool", "status")
    assert result.code == 2 and "spool" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_pass_level_error_exits_1(cli: Run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from mail_pipeline.storage.store.messages import MessageRepository

    assert cli("users", "add", "alice", "alice@example.org").code == 0
    write_pair(tmp_path / "home" / "spool", make_raw(1), ["alice@example.org"])

    def down(*_a: object, **_k: object) -> None:
        raise OperationalError("insert", {}, Exception("connection lost"))

    monkeypatch.setattr(MessageRepository, "insert_batch", down)
    result = cli("spool", "ingest")
    assert result.code == 1 and "connection lost" in result.err
    assert "FAILED" in cli("tasks", "list").out


def test_a_storage_fault_exits_1_keeps_the_inbox_and_the_next_ingest_stores_all(
    cli: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    storage_fault: StorageFault,
) -> None:
    """The seed moved the mail to failed/ and exited 0 with the attachment root full."""
    monkeypatch.setenv("MAIL_PIPELINE_ATTACHMENT_ROOT", str(storage_fault.path))
    spool = tmp_path / "home" / "spool"
    assert cli("users", "add", "alice", "alice@example.org").code == 0
    for n in range(3):
        write_pair(spool, make_raw(n, attachment=b"x" * 200), ["alice@example.org"])
    storage_fault.inject()

    result = cli("spool", "ingest")

    assert result.code == 1
    assert "StorageUnavailable" in result.err
    files = all_files(spool)
    assert len(files["inbox"]) == 6 and files["failed"] == [] and files["processed"] == []
    assert "FAILED" in cli("tasks", "list").out

    storage_fault.clear()
    again = cli("spool", "ingest")
    assert again.code == 0, again.err
    assert "found 3, saved 3, duplicates 0, failed 0" in again.out
    assert all_files(spool)["inbox"] == []


def test_the_defaults_are_the_service_defaults() -> None:
    from mail_pipeline.cli import spool
    from mail_pipeline.intake.spool import ingest

    assert (spool.DEFAULT_BATCH_SIZE, spool.DEFAULT_MAX_SIZE) == (
        ingest.DEFAULT_BATCH_SIZE,
        ingest.DEFAULT_MAX_SIZE,
    )
