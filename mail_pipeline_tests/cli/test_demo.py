"""``mail-pipeline demo``: the demo users and mail, once however often it runs, and only the
project's own lines (no parser-table noise from flanker's first import)."""

from __future__ import annotations

import shutil
from pathlib import Path

import flanker

from mail_pipeline.storage.store import MailStore
from mail_pipeline_tests.cli.conftest import Run, clean_environ, run_installed
from mail_pipeline_tests.fixtures.spool_files import all_files


def test_demo_twice_spools_the_mail_once(cli: Run, store_url: str, tmp_path: Path) -> None:
    first = cli("demo")
    assert first.code == 0, first.err
    spool = tmp_path / "home" / "spool"
    assert first.out.splitlines() == [
        "demo users added: alice, bob",
        f"spooled 5 demo messages into {spool}",
    ]
    assert len(all_files(spool)["inbox"]) == 10  # five .eml + .meta pairs
    assert cli("spool", "ingest").code == 0
    again = cli("demo")
    assert again.code == 0 and again.err == ""
    assert again.out.splitlines() == [
        "demo users added: none (already there)",
        f"5 demo messages already in the spool {spool} or in the store: not spooled again",
    ]
    files = all_files(spool)
    assert files["inbox"] == [] and len(files["unmatched"]) == 2  # one pair, not one per run
    store = MailStore(store_url)
    try:
        assert store.messages.count() == 5
    finally:
        store.dispose()


def test_a_first_import_of_flanker_prints_nothing(tmp_path: Path) -> None:
    """flanker without its parse tables (as on a first import that must build them) makes ply
    report on stderr through flanker's loggers; the demo and the ingest of its mail must print
    their own lines only."""
    copy = tmp_path / "site"
    shutil.copytree(Path(flanker.__file__).parent, copy / "flanker")
    tables = list((copy / "flanker" / "addresslib" / "_parser").glob("*parsetab.py"))
    assert tables
    for table in tables:
        table.unlink()
    for cache in copy.rglob("__pycache__"):
        shutil.rmtree(cache)
    env = clean_environ(PYTHONPATH=str(copy), MAIL_PIPELINE_HOME=str(tmp_path / "home"))
    probe = run_installed(
        cwd=tmp_path,
        env=env,
        python="import logging, flanker; logging.basicConfig(level=logging.WARNING); "
        "import flanker.addresslib.address; print(flanker.__file__)",
    )
    assert probe.out.strip() == str(copy / "flanker" / "__init__.py")
    assert "unreachable" in probe.err or "Generating" in probe.err  # the noise, unsilenced
    for table in (copy / "flanker" / "addresslib" / "_parser").glob("*parsetab.py"):
        table.unlink()
    demo = run_installed("demo", cwd=tmp_path, env=env)
    assert demo.code == 0, demo.err
    assert (demo.err, demo.out.splitlines()[0]) == ("", "demo users added: alice, bob")
    # the demo mail is parsed by the spool ingest (the demo's Dagster runs do the same)
    ingest = run_installed("spool", "ingest", cwd=tmp_path, env=env)
    assert ingest.code == 0, ingest.err
    assert ingest.err == ""
    assert ingest.out.startswith("spool ingest: found 5, saved 5")
    rebuilt = list((copy / "flanker" / "addresslib" / "_parser").glob("*parsetab.py"))
    assert rebuilt  # flanker did build its tables in this run: the silence is not vacuous
