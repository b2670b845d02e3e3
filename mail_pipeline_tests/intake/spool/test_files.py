"""The spool's safe file operations: no link followed, nothing overwritten (no database)."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool import files
from mail_pipeline.intake.spool.files import (
    FileTooLarge,
    count_suffix,
    free_stem,
    is_regular,
    read_nofollow,
    rename_new,
    rename_noreplace,
    write_new_file,
)


def test_read_nofollow_refuses_links_and_other_files(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(SpoolError, match="symlink"):
        read_nofollow(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SpoolError, match="not a regular file"):
        read_nofollow(tmp_path / "fifo")
    with pytest.raises(FileNotFoundError):
        read_nofollow(tmp_path / "missing")
    assert read_nofollow(target) == b"secret"
    assert is_regular(target) and not is_regular(tmp_path / "link")
    assert not is_regular(tmp_path / "missing")


def test_read_nofollow_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    with pytest.raises(FileTooLarge) as too_large:
        read_nofollow(path, limit=9)
    assert (too_large.value.size, too_large.value.limit) == (10, 9)
    assert read_nofollow(path, limit=10) == b"x" * 10


def test_write_new_file_leaves_no_temp_file(tmp_path: Path) -> None:
    write_new_file(tmp_path / "a.meta", b"{}\n", fsync=True)
    assert os.listdir(tmp_path) == ["a.meta"]
    assert (tmp_path / "a.meta").read_bytes() == b"{}\n"


def test_rename_new_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "src").write_text("new")
    (tmp_path / "dst").write_text("old")
    with pytest.raises(SpoolError, match="refusing to overwrite"):
        rename_new(tmp_path / "src", tmp_path / "dst")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(SpoolError):
        rename_new(tmp_path / "src", tmp_path / "dangling")
    assert (tmp_path / "dst").read_text() == "old"
    rename_new(tmp_path / "src", tmp_path / "free")
    assert (tmp_path / "free").read_text() == "new"


def test_free_stem_and_count_suffix(tmp_path: Path) -> None:
    assert free_stem(tmp_path, "m") == "m"
    (tmp_path / "m.eml").write_text("")
    (tmp_path / "m~1.meta").write_text("")
    assert free_stem(tmp_path, "m") == "m~2"
    assert count_suffix(tmp_path, ".eml") == 1


@pytest.fixture(params=["renameat2", "fallback"])
def noreplace_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the real ``renameat2`` and with a file system that refuses the flag."""
    assert files._renameat2 is not None, "Linux's libc has renameat2"
    if request.param == "fallback":

        def refuses_the_flag(*_args: object) -> int:
            ctypes.set_errno(errno.EINVAL)
            return -1

        monkeypatch.setattr(files, "_renameat2", refuses_the_flag)
    return str(request.param)


def test_rename_noreplace_moves_only_to_a_free_name(tmp_path: Path, noreplace_kind: str) -> None:
    (tmp_path / "src").write_text("new")
    (tmp_path / "dst").write_text("old")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    for taken in ("dst", "dangling"):
        with pytest.raises(FileExistsError):
            rename_noreplace(tmp_path / "src", str(tmp_path / taken))
    assert (tmp_path / "dst").read_text() == "old" and (tmp_path / "src").read_text() == "new"
    assert os.readlink(tmp_path / "dangling") == str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        rename_noreplace(tmp_path / "missing", tmp_path / "free")
    with pytest.raises(FileNotFoundError):
        rename_noreplace(tmp_path / "src", tmp_path / "no-such-dir" / "x")
    rename_noreplace(str(tmp_path / "src"), tmp_path / "free")
    assert sorted(os.listdir(tmp_path)) == ["dangling", "dst", "free"]
    assert (tmp_path / "free").read_text() == "new"


def test_rename_noreplace_is_one_system_call_without_a_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert files._renameat2 is not None
    real = files._renameat2
    calls: list[str] = []

    def counting(*args: Any) -> int:
        calls.append("renameat2")
        return real(*args)

    def no_stat(*_args: object, **_kwargs: object) -> os.stat_result:
        raise AssertionError("rename_noreplace must not stat")

    monkeypatch.setattr(files, "_renameat2", counting)
    monkeypatch.setattr(os, "lstat", no_stat)
    monkeypatch.setattr(os, "rename", no_stat)
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    rename_noreplace(tmp_path / "a", tmp_path / "c")
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "b", tmp_path / "c")
    assert calls == ["renameat2", "renameat2"]


def test_a_kernel_without_renameat2_falls_back_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []

    def no_such_call(*args: object) -> int:
        calls.append(args)
        ctypes.set_errno(errno.ENOSYS)
        return -1

    monkeypatch.setattr(files, "_renameat2", no_such_call)
    for name in ("a", "b"):
        (tmp_path / name).write_text(name)
        rename_noreplace(tmp_path / name, tmp_path / f"{name}2")
    assert len(calls) == 1 and files._renameat2 is None
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a2", tmp_path / "b2")
    assert (tmp_path / "a2").read_text() == "a" and (tmp_path / "b2").read_text() == "b"


def test_rename_noreplace_reports_other_errors(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):  # ENOTDIR: a path through a file
        rename_noreplace(tmp_path / "f" / "x", tmp_path / "y")
    assert os.path.isfile(tmp_path / "f")
