"""The spool ingest pass on real files and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mail_pipeline.errors import StorageUnavailable
from mail_pipeline.intake.spool.ingest import SpoolIngestService
from mail_pipeline.storage.store import EmailSource, MailStore, TaskStatus
from mail_pipeline_tests.fixtures.faults import StorageFault
from mail_pipeline_tests.fixtures.spool_files import all_files, make_raw, write_pair
from mail_pipeline_tests.intake.spool.support import stored

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# --- the pass: readiness, symlinks, dedup, task counts, faults ------------------------------


def test_eml_without_meta_is_not_touched(
    service: SpoolIngestService, spool: Path, users: dict[str, int]
) -> None:
    sid = write_pair(spool, make_raw(11), ["alice@example.org"], meta=False)
    old = time.time() - 7200
    os.utime(spool / "inbox" / f"{sid}.eml", (old, old))
    result = service.ingest()
    assert result.found == 0
    assert all_files(spool)["inbox"] == [f"{sid}.eml"]
    status = service.status()
    assert status.inbox_waiting == 1 and status.stale_eml_without_meta == [f"{sid}.eml"]


def test_symlink_in_inbox_is_refused(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    tmp_path: Path,
    users: dict[str, int],
) -> None:
    target = tmp_path / "secret.eml"
    target.write_bytes(make_raw(14))
    meta_target = tmp_path / "secret.meta"
    meta_target.write_text(json.dumps({"id": "x", "rcpt_to": ["alice@example.org"]}))
    (spool / "inbox").mkdir(parents=True)
    sid = "0b7a6c1e-1111-4222-8333-444455556666"
    os.symlink(target, spool / "inbox" / f"{sid}.eml")
    (spool / "inbox" / f"{sid}.meta").write_text(
        json.dumps({"id": sid, "rcpt_to": ["alice@example.org"]})
    )
    sid2 = "0b7a6c1e-1111-4222-8333-444455557777"
    (spool / "inbox" / f"{sid2}.eml").write_bytes(make_raw(15))
    os.symlink(meta_target, spool / "inbox" / f"{sid2}.meta")
    result = service.ingest()
    assert result.found == 0 and store.messages.count() == 0
    assert result.refused == 2
    assert {p.reason for p in result.problems} == {"symlink"}
    assert (spool / "inbox" / f"{sid}.eml").is_symlink()
    assert (spool / "inbox" / f"{sid2}.meta").is_symlink()
    assert target.read_bytes() == make_raw(14) and meta_target.exists()
    assert sorted(service.status().refused) == [f"{sid}.eml", f"{sid2}.meta"]


def test_reingest_is_idempotent(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    raw = make_raw(17)
    write_pair(spool, raw, ["alice@example.org"])
    write_pair(spool, raw, ["alice@example.org"])  # the same message spooled twice
    result = service.ingest()
    assert (result.saved, result.duplicates, result.processed) == (1, 1, 2)
    assert store.messages.count() == 1


def test_counts_recorded_in_task(
    service: SpoolIngestService, store: MailStore, spool: Path, users: dict[str, int]
) -> None:
    for n in range(3):
        write_pair(spool, make_raw(n), ["alice@example.org", "bob@example.org"])
    write_pair(spool, b"garbage", ["alice@example.org"])
    write_pair(spool, make_raw(9), ["nobody@example.org"])
    result = service.ingest_as_task(run_id="run-1")
    task = store.tasks.get(result.task_id or "")
    assert task.status is TaskStatus.COMPLETED
    assert task.email_source is EmailSource.HARAKA and task.run_id == "run-1"
    c = task.counters
    assert (c.fetched, c.saved, c.failed, c.duplicate) == (5, 6, 1, 0)
    assert task.details["spool_ingest"]["unmatched"] == 1
    # The op's way: a task of its own, passed in; the state is left to the caller.
    own = store.tasks.create(EmailSource.HARAKA, status=TaskStatus.RUNNING)
    write_pair(spool, make_raw(0), ["alice@example.org"])
    service.ingest(task_id=own.task_id)
    snap = store.tasks.get(own.task_id)
    assert snap.status is TaskStatus.RUNNING and snap.counters.duplicate == 1


def test_database_error_returns_batch_and_fails_task(
    service: SpoolIngestService,
    store: MailStore,
    spool: Path,
    users: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy.exc import OperationalError

    ids = [write_pair(spool, make_raw(n), ["alice@example.org"]) for n in range(3)]

    def down(*_a: object, **_k: object) -> None:
        raise OperationalError("insert", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store.messages, "insert_batch", down)
    with pytest.raises(OperationalError):
        service.ingest_as_task()
    files = all_files(spool)
    assert files["claims"] == []
    assert files["inbox"] == sorted([f"{i}.eml" for i in ids] + [f"{i}.meta" for i in ids])
    task = store.tasks.recent()[0]
    assert task.status is TaskStatus.FAILED and "server closed" in task.error_message


def test_a_storage_fault_puts_the_batch_back_fails_the_task_and_heals(
    store: MailStore, spool: Path, users: dict[str, int], storage_fault: StorageFault
) -> None:
    """The seed moved every message to failed/ and completed the task; nothing retried."""
    service = SpoolIngestService(store, spool, storage_fault.path, batch_size=2, fsync=False)
    ids = [
        write_pair(spool, make_raw(n, attachment=b"x" * 100), ["alice@example.org"])
        for n in range(50, 55)
    ]
    storage_fault.inject()
    with pytest.raises(StorageUnavailable):
        service.ingest_as_task()
    files = all_files(spool)
    assert files["inbox"] == sorted(f"{sid}.{ext}" for sid in ids for ext in ("eml", "meta"))
    assert files["failed"] == [] and files["processed"] == [] and files["claims"] == []
    task = store.tasks.recent()[0]
    assert task.status is TaskStatus.FAILED
    assert "StorageUnavailable" in task.error_message
    expected = "Read-only file system" if storage_fault.kind == "read_only" else "No space left"
    assert expected in task.error_message
    assert store.messages.count() == 0

    storage_fault.clear()
    result = service.ingest_as_task()
    assert (result.found, result.saved, result.failed) == (5, 5, 0)
    assert store.tasks.get(result.task_id or "").status is TaskStatus.COMPLETED
    assert all_files(spool)["inbox"] == []


# --- crash safety: kill -9 at several points -------------------------------------------------


def start_ingester(
    store_url: str,
    spool: Path,
    attachments: Path,
    batch_size: int,
    pause: str | None = None,
    marker: Path | None = None,
) -> subprocess.Popen[str]:
    """Start a pass in its own process (see crash_runner); it stops at ``pause`` if given."""
    args = [store_url, str(spool), str(attachments), str(batch_size)]
    if pause:
        args += [pause, str(marker)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "mail_pipeline_tests.intake.spool.crash_runner", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"ingester exited {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the ingester never reached the pause point")
        time.sleep(0.02)


@pytest.mark.parametrize("point", ["after_claim", "mid_batch", "after_commit", "mid_move"])
def test_kill_9_then_next_run_stores_everything_once(
    point: str,
    store: MailStore,
    store_url: str,
    spool: Path,
    attachment_root: Path,
    tmp_path: Path,
    users: dict[str, int],
) -> None:
    expected: Counter[tuple[int, str]] = Counter()
    for n in range(25):
        rcpt = ["alice@example.org"] + (["bob@example.org"] if n % 3 == 0 else [])
        write_pair(spool, make_raw(n, attachment=b"a" * 300 if n % 4 == 0 else None), rcpt)
        for address in rcpt:
            expected[(users[address.split("@")[0]], f"spool-{n}@example.net")] = 1
    write_pair(spool, make_raw(99), ["nobody@example.org"])
    # The first batch is killed; the second pass must not be on batch 1 of a fresh claim.
    marker = tmp_path / "paused"
    proc = start_ingester(store_url, spool, attachment_root, 10, point, marker)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    claims = all_files(spool)["claims"]
    assert claims, "the killed run left a claim folder"
    if point in ("after_commit", "mid_move"):
        assert store.messages.count() > 0  # the first batch was committed
    else:
        assert store.messages.count() == 0

    rerun = start_ingester(store_url, spool, attachment_root, 10)
    _out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert stored(store) == expected
    files = all_files(spool)
    assert files["claims"] == [] and files["inbox"] == [] and files["failed"] == []
    assert len(files["processed"]) == 2 * 25
    assert len(files["unmatched"]) == 2
    # Every attachment file belongs to a stored row: none written twice, none orphaned.
    assert set(service_files(attachment_root)) == store.messages.attachment_paths()
    # The killed run's task stays RUNNING (the stale-task cleanup closes it); the rerun's
    # task completed.
    statuses = Counter(t.status for t in store.tasks.recent())
    assert statuses == Counter({TaskStatus.RUNNING: 1, TaskStatus.COMPLETED: 1})


def service_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


def test_two_ingesters_at_once(
    store: MailStore, store_url: str, spool: Path, attachment_root: Path, users: dict[str, int]
) -> None:
    expected: Counter[tuple[int, str]] = Counter()
    ids = []
    for n in range(400):
        rcpt = ["alice@example.org"] + (["carol@example.org"] if n % 5 == 0 else [])
        ids.append(write_pair(spool, make_raw(n), rcpt))
        for address in rcpt:
            expected[(users[address.split("@")[0]], f"spool-{n}@example.net")] = 1
    # A few messages spooled twice (a client retry): still stored once.
    for n in range(0, 400, 50):
        ids.append(write_pair(spool, make_raw(n), ["alice@example.org"]))
    procs = [start_ingester(store_url, spool, attachment_root, 15) for _ in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert stored(store) == expected
    files = all_files(spool)
    assert files["claims"] == [] and files["inbox"] == [] and files["failed"] == []
    processed = Counter(files["processed"])
    assert all(count == 1 for count in processed.values())
    assert sorted(processed) == sorted([f"{i}.eml" for i in ids] + [f"{i}.meta" for i in ids])
    tasks = store.tasks.recent()
    assert len(tasks) == 2 and all(t.status is TaskStatus.COMPLETED for t in tasks)
    assert sum(t.counters.fetched for t in tasks) == len(ids)
    assert sum(t.counters.saved for t in tasks) == sum(expected.values())
