"""Start-up time of ``mail-pipeline --help`` against a bare ``python -c pass``.

    .venv/bin/python bench/cli_startup.py [--rounds 7] [--json PATH]

Each round starts both commands as fresh processes (the venv's ``mail-pipeline`` script, and
the venv's interpreter with ``-c pass``), alternating which goes first so that load from other
processes hits both alike; each side's figure is the median of its wall times. Prints both
medians with their spread, the ratio (``--help`` / bare interpreter), which heavy modules
(Dagster, SQLAlchemy, flanker, the store) ``--help`` imported (none is the target), and the
load average before and after. Results go to ``--json`` (default
``bench/results/cli_startup.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("mail-pipeline")
HEAVY = ("dagster", "sqlalchemy", "flanker", "alembic", "pydantic", "mail_pipeline.storage")
#: Prints the heavy modules that ``mail-pipeline --help`` imports, one per line.
PROBE = (
    "import contextlib, io, sys\n"
    "from mail_pipeline.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    main(['--help'])\n"
    f"heavy = {HEAVY!r}\n"
    "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)})))\n"
)


def wall_time(command: list[str]) -> float:
    """Run ``command`` (its output discarded) and return its wall time in seconds.

    Raises:
        subprocess.CalledProcessError: the command failed.
    """
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and write the JSON; return 0 (1 if ``--help`` imports a heavy
    module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per side (at least 3)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "cli_startup.json"))
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (the figures are medians)")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mail-pipeline --help": [str(SCRIPT), "--help"],
    }
    for command in commands.values():  # warm-up: the page cache, .pyc files
        wall_time(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()
    for round_no in range(args.rounds):
        order = list(commands.items())
        for name, command in order if round_no % 2 == 0 else reversed(order):
            times[name].append(wall_time(command))
    load_after = os.getloadavg()
    heavy = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout.split()

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["mail-pipeline --help"] / median["python -c pass"]
    for name, values in times.items():
        spread = ", ".join(f"{v * 1000:.0f}" for v in sorted(values))
        print(f"{name:22} median {median[name] * 1000:6.0f} ms  ({spread})")
    print(f"ratio --help / python: {ratio:.2f}")
    print(f"heavy modules imported by --help: {', '.join(heavy) or 'none'}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*load_after))
    results = {
        "rounds": args.rounds,
        "seconds": times,
        "median_seconds": median,
        "ratio": ratio,
        "heavy_modules": heavy,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path}")
    return 1 if heavy else 0


if __name__ == "__main__":
    raise SystemExit(main())
