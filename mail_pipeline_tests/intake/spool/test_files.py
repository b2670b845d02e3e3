"""The spool's safe file operations: no link followed, nothing overwritten (no database)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mail_pipeline.errors import SpoolError
from mail_pipeline.intake.spool.files import (
    FileTooLarge,
    count_suffix,
    free_stem,
    is_regular,
    read_nofollow,
    rename_new,
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
