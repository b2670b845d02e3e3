"""Parse throughput: the current :func:`mail_pipeline.mime.parse_message` against an older one.

    .venv/bin/python bench/parse.py [--old-rev REV] [--n 500] [--rounds 3]

The older implementation is the single-module ``mail_pipeline/parser.py`` (with its
``mail_pipeline/html_text.py``) as of ``--old-rev`` (default: the last commit that has it),
read with ``git show`` and loaded as a module from a temporary directory. The corpus is the
test corpus (``mail_pipeline_tests/data/corpus``) plus ``--n`` generated ~20 KB messages of
the IMAP benchmark (a third with an attachment, a fifth 8-bit). Rounds interleave old and
new (alternating which goes first) so that load from other processes hits both alike; each
side's figure is the median of its rounds. Both must give the same results for every
message. Prints messages per CPU second for each, the new/old ratio (target: ≥ 1.0 within
noise) and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OLD_PARSER = "mail_pipeline/parser.py"
OLD_HTML = "mail_pipeline/html_text.py"


def git(*args: str) -> str:
    """Return the stdout of ``git args`` run in the repository root."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def default_old_rev() -> str:
    """Return the last commit that has ``mail_pipeline/parser.py``."""
    if git("ls-tree", "HEAD", "--", OLD_PARSER).strip():
        return "HEAD"
    removed = git("rev-list", "-1", "HEAD", "--", OLD_PARSER).strip()
    return f"{removed}^"


def load_old(rev: str, tmp: Path) -> ModuleType:
    """Return the module ``parser.py`` of ``rev``, its ``html_text`` import served from ``rev``."""
    (tmp / "old_html_text.py").write_text(git("show", f"{rev}:{OLD_HTML}"))
    source = git("show", f"{rev}:{OLD_PARSER}").replace(
        "from mail_pipeline.html_text import", "from old_html_text import"
    )
    (tmp / "old_parser.py").write_text(source)
    sys.path.insert(0, str(tmp))
    spec = importlib.util.spec_from_file_location("old_parser", tmp / "old_parser.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_parser"] = module
    spec.loader.exec_module(module)
    return module


def corpus(n: int) -> list[bytes]:
    """Return the benchmark corpus: the test corpus plus ``n`` generated messages."""
    from imap_ingest import make_messages  # bench/imap_ingest.py, beside this script

    tests = ROOT / "mail_pipeline_tests" / "data" / "corpus"
    return [p.read_bytes() for p in sorted(tests.glob("*.eml"))] + make_messages(n)


def outcome(parse: Callable[[bytes], Any], raw: bytes) -> tuple[Any, ...]:
    """Return what ``parse`` made of ``raw``, comparable across implementations."""
    try:
        msg = parse(raw)
    except Exception as error:
        return ("error", type(error).__name__, getattr(error, "reason", None))
    attachments = tuple(
        (a.filename, a.content_type, a.sha256, a.content_id, a.inline) for a in msg.attachments
    )
    return (
        msg.message_id,
        msg.subject,
        msg.sender,
        msg.sender_name,
        msg.to,
        msg.cc,
        msg.bcc,
        msg.date,
        msg.text,
        msg.html,
        attachments,
        msg.content_hash,
        msg.notes,
    )


def one_pass(parse: Callable[[bytes], Any], messages: list[bytes]) -> float:
    """Return the CPU seconds ``parse`` takes over every message (parse errors included).

    CPU time of this process, not wall time: on the shared machine, preemption by other
    processes would otherwise swamp a difference of a few per cent.
    """
    started = time.process_time()
    for raw in messages:
        with contextlib.suppress(Exception):  # MessageParseError: part of the work too
            parse(raw)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default=None, help="revision with mail_pipeline/parser.py")
    parser.add_argument("--n", type=int, default=500, help="generated messages")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side")
    args = parser.parse_args(argv)
    if args.n < 0 or args.rounds < 1:
        parser.error("--n must be >= 0 and --rounds >= 1")

    from mail_pipeline.mime import parse_message

    rev = args.old_rev or default_old_rev()
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        old = load_old(rev, Path(tmp)).parse_message
        messages = corpus(args.n)
        size = sum(map(len, messages))
        differ = [
            i for i, raw in enumerate(messages) if outcome(old, raw) != outcome(parse_message, raw)
        ]
        if differ:
            print(f"results differ for {len(differ)} messages, e.g. #{differ[0]}")
            return 1
        one_pass(old, messages)  # warm-up: imports, regex caches, chardet tables
        one_pass(parse_message, messages)
        times: dict[str, list[float]] = {"old": [], "new": []}
        load_before = os.getloadavg()
        for round_no in range(args.rounds):
            order = [("old", old), ("new", parse_message)]
            for side, parse in order if round_no % 2 == 0 else reversed(order):
                times[side].append(one_pass(parse, messages))
        load_after = os.getloadavg()

    rate = {side: len(messages) / statistics.median(values) for side, values in times.items()}
    print(f"old implementation: {rev}")
    print(f"corpus: {len(messages)} messages, {size / 1e6:.1f} MB; rounds: {args.rounds}")
    for side in ("old", "new"):
        spread = ", ".join(f"{len(messages) / t:.0f}" for t in times[side])
        print(f"{side}: median {rate[side]:8.1f} msgs per CPU s  ({spread})")
    print(f"new/old: {rate['new'] / rate['old']:.3f}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
