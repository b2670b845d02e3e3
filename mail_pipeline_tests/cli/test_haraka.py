"""``mail-pipeline haraka start|status|stop`` runs the real Haraka against the spool."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import pytest

from mail_pipeline_tests.cli.conftest import Run
from mail_pipeline_tests.fixtures.servers import free_port


def test_start_status_send_stop(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = tmp_path / "spool"
    monkeypatch.setenv("MAIL_PIPELINE_SPOOL_DIR", str(spool))
    port = free_port()
    assert cli("haraka", "status").code == 1
    started = cli("haraka", "start", "--port", str(port), "--domain", "example.test")
    assert started.code == 0, started.err
    try:
        status = cli("haraka", "status")
        assert status.code == 0 and f":{port}" in status.out
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(
                "a@example.net",
                ["bob@example.test"],
                b"Subject: hi\r\nMessage-ID: <cli@x>\r\n\r\nhello\r\n",
            )
        assert len(list((spool / "inbox").glob("*.meta"))) == 1
    finally:
        assert cli("haraka", "stop").code == 0
    assert cli("haraka", "status").code == 1


def test_start_needs_a_domain(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAIL_PIPELINE_HARAKA_DOMAINS", raising=False)
    result = cli("haraka", "start")
    assert result.code == 2 and "--domain" in result.err


def test_start_mistakes_name_the_options(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from mail_pipeline.cli.haraka import option_names

    assert option_names("HarakaConfig.port: 0 is not a TCP port") == "--port: 0 is not a TCP port"
    bad_port = cli("haraka", "start", "--domain", "example.test", "--port", "70000")
    assert bad_port.code == 2 and "--port" in bad_port.err
    bad_domain = cli("haraka", "start", "--domain", "not a domain")
    assert bad_domain.code == 2
    lines = bad_domain.err.strip().splitlines()
    assert len(lines) == 1 and "--domain" in lines[0] and "HarakaConfig" not in lines[0]


def test_status_json(cli: Run) -> None:
    result = cli("haraka", "status", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["running"] is False and data["pid"] is None
