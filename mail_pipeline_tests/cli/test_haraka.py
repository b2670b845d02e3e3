"""``mail-pipeline haraka start|status|stop`` runs the real Haraka against the spool."""

from __future__ import annotations

import json
import smtplib
import socket
from pathlib import Path

import pytest

from mail_pipeline_tests.cli.conftest import Result, Run
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


#: Each mistake ``haraka start`` can be given, and the name its one-line message must show.
START_MISTAKES = {
    "a domain that is not one": (("--domain", "not a domain"), "--domain"),
    "a domain of dots only": (("--domain", "example.test", "--domain", "."), "--domain"),
    "an empty host": (("--domain", "example.test", "--host", ""), "--host"),
    "a host that is not this machine's": (
        ("--domain", "example.test", "--host", "192.0.2.1"),
        "--host",
    ),
    "a port out of range": (("--domain", "example.test", "--port", "70000"), "--port"),
    "a size below 1": (("--domain", "example.test", "--max-size", "0"), "--max-size"),
}


def _one_line_naming(result: Result, name: str) -> str:
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0] and "HarakaConfig" not in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("mistake", sorted(START_MISTAKES))
def test_start_names_the_option_of_each_mistake(cli: Run, mistake: str) -> None:
    options, name = START_MISTAKES[mistake]
    _one_line_naming(cli("haraka", "start", *options), name)


def test_start_on_a_port_in_use_names_the_port(cli: Run) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("haraka", "start", "--domain", "example.test", "--port", str(port))
    line = _one_line_naming(result, "--port")
    reason = "Address already in use"
    assert line == f"mail-pipeline: error: --port: cannot listen on 127.0.0.1:{port}: {reason}"


def test_domains_from_the_environment_are_named_by_its_variable(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAIL_PIPELINE_HARAKA_DOMAINS", "example.test, not a domain")
    line = _one_line_naming(cli("haraka", "start"), "MAIL_PIPELINE_HARAKA_DOMAINS")
    assert (
        line
        == "mail-pipeline: error: MAIL_PIPELINE_HARAKA_DOMAINS: 'not a domain' is not a domain name"
    )


def test_every_config_field_has_a_name_and_each_name_is_an_option_of_start() -> None:
    """A field added to HarakaConfig's problems without an option name here fails."""
    from mail_pipeline.cli.haraka import OPTION_NAMES, start_server
    from mail_pipeline.intake.spool.haraka_config import FIELD_LABELS

    assert set(OPTION_NAMES) == set(FIELD_LABELS)
    options = {opt for param in start_server.params for opt in param.opts}
    assert set(OPTION_NAMES.values()) <= options


def test_status_json(cli: Run) -> None:
    result = cli("haraka", "status", "--json")
    assert result.code == 1
    data = json.loads(result.out)
    assert data["running"] is False and data["pid"] is None
