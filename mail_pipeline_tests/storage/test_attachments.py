"""Attachment names and files: safe, unique, never outside the root."""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from mail_pipeline.errors import SaveError, StorageUnavailable
from mail_pipeline.storage.attachments import (
    MAX_DISK_NAME_BYTES,
    MAX_NAME_BYTES,
    MAX_NAME_LENGTH,
    AttachmentStorage,
    safe_filename,
    storage_error,
)
from mail_pipeline_tests.fixtures.faults import StorageFault


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("report.pdf", "application/pdf", "report.pdf"),
        ("../../etc/passwd", "text/plain", "passwd"),
        ("..\\..\\windows\\system.ini", "text/plain", "system.ini"),
        ("/absolute/path.txt", "text/plain", "path.txt"),
        ("..", "text/plain", "attachment.txt"),
        ("", "image/png", "attachment.png"),
        (None, "application/pdf", "attachment.pdf"),
        ("a\x00b\x1fc.txt", "text/plain", "a_b_c.txt"),
        ('what?<is>"this".txt', "text/plain", "what_is_this_.txt"),
        ("Résumé – 2024.docx", "application/octet-stream", "Résumé – 2024.docx"),
        ("报告.xlsx", "application/octet-stream", "报告.xlsx"),
        ("CON.txt", "text/plain", "_CON.txt"),
        (".hidden", "text/plain", "hidden"),
    ],
)
def test_safe_filename(name: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(name, content_type) == expected


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("x" * 500 + ".pdf")
    assert len(name) == MAX_NAME_LENGTH
    assert name.endswith(".pdf")


LONG_NAMES = {
    "80 CJK characters": ("报告" * 40 + ".xlsx", "xlsx"),
    "300 x é": ("é" * 300, ""),
    "300 x letter + combining accent": ("x\u0301" * 300, ""),
    "long Cyrillic name with extension": ("Отчёт о продажах за квартал " * 10 + ".docx", "docx"),
    "300 bytes of 4-byte emoji": ("😀" * 75, ""),
    "emoji with extension": ("📎" * 75 + ".pdf", "pdf"),
    "ZWJ emoji sequences": ("👩\u200d💻" * 60 + ".png", "png"),
    "CJK extension": ("한" * 100 + "." + "漢" * 30, "漢" * 16),
}


@pytest.mark.parametrize(("name", "ext"), LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_long_non_ascii_names_fit_the_file_system_in_bytes(
    name: str, ext: str, attachment_root: Path
) -> None:
    safe = safe_filename(name)
    encoded = safe.encode("utf-8")  # a cut inside a character would fail here
    assert len(encoded) <= MAX_NAME_BYTES
    assert len(f"{'0' * 16}_{safe}".encode()) <= MAX_DISK_NAME_BYTES
    assert safe == safe_filename(safe)  # what AttachmentStorage.write insists on
    stem = safe.removesuffix(f".{ext}") if ext else safe
    assert safe.endswith(f".{ext}") or not ext
    normalised = unicodedata.normalize("NFKC", name)
    assert normalised.startswith(stem) and len(stem) > 20
    # whole characters only: never a base letter without its accent, never a dangling joiner
    rest = normalised[len(stem) :]
    assert not rest.startswith("\u0301") and not stem.endswith("\u200d")
    # and the file system takes it
    relative = AttachmentStorage(attachment_root).write(1, safe, b"data")
    assert Path(relative).name.endswith(f"_{safe}")
    assert (attachment_root / relative).read_bytes() == b"data"


def test_lone_surrogates_are_replaced() -> None:
    assert safe_filename("a\udcffb.txt") == "a_b.txt"


def test_same_name_never_overwrites(attachment_root: Path) -> None:
    storage = AttachmentStorage(attachment_root)
    first = storage.write(1, "report.pdf", b"first")
    second = storage.write(1, "report.pdf", b"second")
    assert first != second
    assert storage.path_of(first).read_bytes() == b"first"
    assert storage.path_of(second).read_bytes() == b"second"
    assert sorted(storage.iter_files()) == sorted([first, second])


def test_content_written_in_chunks(attachment_root: Path) -> None:
    storage = AttachmentStorage(attachment_root, fsync=False)
    chunks = (bytes([i]) * 1000 for i in range(5))
    path = storage.write(1, "big.bin", chunks)
    assert storage.path_of(path).read_bytes() == b"".join(bytes([i]) * 1000 for i in range(5))
    assert storage.path_of(storage.write(1, "empty.bin", iter(()))).read_bytes() == b""


def test_chunks_that_fail_midway_leave_no_file(attachment_root: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first part"
        raise RuntimeError("the decoder broke")

    storage = AttachmentStorage(attachment_root, fsync=False)
    with pytest.raises(RuntimeError, match="decoder broke"):
        storage.write(1, "big.bin", chunks())
    assert list(storage.iter_files()) == []


def test_unsafe_names_and_paths_are_refused(attachment_root: Path) -> None:
    storage = AttachmentStorage(attachment_root)
    with pytest.raises(ValueError):
        storage.write(1, "../escape.txt", b"x")
    with pytest.raises(ValueError):
        storage.path_of("../../escape.txt")


def test_remove_cleans_empty_directories(attachment_root: Path) -> None:
    storage = AttachmentStorage(attachment_root)
    path = storage.write(7, "a.txt", b"a")
    storage.remove([path, "7/does/not/exist.txt"])
    assert list(attachment_root.iterdir()) == []


def test_each_folder_is_made_once_and_again_after_it_was_removed(
    attachment_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = AttachmentStorage(attachment_root, fsync=False)
    made: list[str] = []
    real_mkdir = os.mkdir

    def counting_mkdir(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        made.append(os.fspath(path))
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", counting_mkdir)
    paths = [storage.write(5, f"f{i}.txt", b"x") for i in range(300)]
    folders = {Path(p).parent.as_posix() for p in paths}
    # One mkdir per folder (plus the user's folder, tried twice by the first), not one per file.
    assert len(made) <= len(folders) + 2 < len(paths)
    # Removing every file prunes the folders; writing again makes them again.
    storage.remove(paths)
    assert list(attachment_root.iterdir()) == []
    again = storage.write(5, "g.txt", b"y")
    assert storage.path_of(again).read_bytes() == b"y"
    # A folder removed behind its back (another process's retention) is made again too.
    other = storage.write(6, "h.txt", b"z")
    for child in sorted((attachment_root / "6").rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    (attachment_root / "6").rmdir()
    token = Path(other).name[:2]
    monkeypatch.setattr("secrets.token_hex", lambda n: token + "0" * (2 * n - 2))
    assert storage.path_of(storage.write(6, "h.txt", b"w")).read_bytes() == b"w"


def test_sync_flushes_a_batch(attachment_root: Path) -> None:
    storage = AttachmentStorage(attachment_root, fsync=True)
    paths = [storage.write(3, f"f{i}.txt", b"x", sync=False) for i in range(3)]
    storage.sync(paths)  # one syncfs (or fsyncs): must not raise, files intact
    assert sorted(storage.path_of(p).read_bytes() for p in paths) == [b"x", b"x", b"x"]
    assert all(Path(p).name.endswith(f"_f{i}.txt") for i, p in enumerate(paths))


def test_a_full_or_read_only_root_is_storage_unavailable(storage_fault: StorageFault) -> None:
    """The file system's fault, not the message's: callers put the work back and retry."""
    storage = AttachmentStorage(storage_fault.path, fsync=False)
    storage_fault.inject()
    with pytest.raises(StorageUnavailable) as info:
        storage.write(1, "a.txt", b"some content")
    assert info.value.__cause__ is not None
    expected = errno.EROFS if storage_fault.kind == "read_only" else errno.ENOSPC
    assert getattr(info.value.__cause__, "errno", None) == expected
    storage_fault.clear()
    assert list(storage.iter_files()) == []  # nothing half-written was left behind
    assert storage.path_of(storage.write(1, "a.txt", b"again")).read_bytes() == b"again"


@pytest.mark.parametrize(
    ("code", "environmental"),
    [
        (errno.ENOSPC, True),
        (errno.EDQUOT, True),
        (errno.EROFS, True),
        (errno.EACCES, True),
        (errno.EPERM, True),
        (errno.EIO, True),
        (errno.EMFILE, True),
        (errno.ENAMETOOLONG, False),
        (errno.EINVAL, False),
        (errno.EILSEQ, False),
    ],
)
def test_storage_errors_tell_the_file_system_from_the_message(
    code: int, environmental: bool
) -> None:
    error = storage_error("cannot write attachment x", OSError(code, os.strerror(code)))
    assert isinstance(error, StorageUnavailable) is environmental
    assert isinstance(error, SaveError) is not environmental
    assert os.strerror(code) in str(error)
