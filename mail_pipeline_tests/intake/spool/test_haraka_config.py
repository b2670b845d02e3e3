"""Configuring Haraka: settings validation, locating Haraka, the generated runtime directory.

No server is started here; :mod:`test_haraka` starts real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.errors import ConfigError, MailPipelineError, SpoolError
from mail_pipeline.intake.problems import ConfigProblemError
from mail_pipeline.intake.spool import haraka_config as hc


def test_prepare_runtime_writes_the_generated_config(tmp_path: Path) -> None:
    config = hc.HarakaConfig(
        spool_dir=tmp_path / "spool",
        domains=("example.test", "b.test"),
        host="::1",
        port=2626,
        max_message_bytes=1234,
        fsync=False,
        runtime_dir=tmp_path / "runtime",
    )
    runtime = hc.prepare_runtime(config)
    assert runtime == tmp_path / "runtime"
    smtp = (runtime / "config" / "smtp.ini").read_text()
    assert "listen=[::1]:2626\n" in smtp and "nodes=0\n" in smtp
    assert (runtime / "config" / "host_list").read_text() == "example.test\nb.test\n"
    spool_ini = (runtime / "config" / "mail_pipeline_spool.ini").read_text()
    assert f"spool_dir={config.spool_dir}\n" in spool_ini
    assert "max_bytes=1234\n" in spool_ini and "fsync=false\n" in spool_ini
    assert (runtime / "plugins" / "mail_pipeline_spool.js").is_file()
    assert all((runtime / "config" / name).is_file() for name in hc.GENERATED_CONFIG)


def test_runtime_dir_defaults_beside_the_spool(tmp_path: Path) -> None:
    config = hc.HarakaConfig(spool_dir=tmp_path / "spool", domains=("example.test",))
    assert config.resolved_runtime_dir == tmp_path.resolve() / "haraka-runtime"


def test_missing_node_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hc.NODE_ENV, str(tmp_path / "no-node-here"))
    with pytest.raises(ConfigError, match="node"):
        hc.haraka_entry()


def test_missing_haraka_dir_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hc.HARAKA_DIR_ENV, str(tmp_path / "nothing"))
    with pytest.raises(ConfigError, match="nothing"):
        hc.find_haraka_dir()


def test_unusable_spool_dir_is_a_spool_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = hc.HarakaConfig(spool_dir=tmp_path / "file" / "spool", domains=("example.test",))
    with pytest.raises(MailPipelineError) as failed:
        hc.prepare_spool(config.spool_dir)
    assert isinstance(failed.value, SpoolError)


@pytest.mark.parametrize(
    ("fields", "field", "match"),
    [
        ({"domains": ()}, "domains", "at least one domain"),
        ({"domains": (" ", "")}, "domains", "at least one domain"),
        ({"domains": ("user@example.test",)}, "domains", "not a domain"),
        ({"domains": ("example.test", ".")}, "domains", "'.' is not a domain"),
        ({"domains": ("example.test",), "host": ""}, "host", "not a host"),
        ({"domains": ("example.test",), "host": "local host"}, "host", "not a host"),
        ({"domains": ("example.test",), "port": 0}, "port", "not a TCP port"),
        ({"domains": ("example.test",), "max_message_bytes": 0}, "max_message_bytes", "positive"),
    ],
)
def test_invalid_config_is_refused_with_a_problem_keyed_by_field(
    tmp_path: Path, fields: dict[str, object], field: str, match: str
) -> None:
    with pytest.raises(ConfigProblemError, match=match) as refused:
        hc.HarakaConfig(spool_dir=tmp_path, **fields)  # type: ignore[arg-type]
    (problem,) = refused.value.problems
    assert isinstance(problem, hc.HarakaProblem) and problem.field == field
    # Shown with the field's label everywhere but where a command names its option.
    assert str(refused.value).startswith(hc.FIELD_LABELS[field])
    assert problem.render({field: "--option"}).startswith("--option")


def test_every_problem_of_a_config_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigProblemError) as refused:
        hc.HarakaConfig(spool_dir=tmp_path, domains=("a b", "{x} y"), host="", port=0)
    assert [p.field for p in refused.value.problems] == ["domains", "domains", "host", "port"]
    assert str(refused.value) == (
        "HarakaConfig.domains: 'a b' is not a domain name; "
        "HarakaConfig.domains: '{x} y' is not a domain name; "
        "HarakaConfig.host: '' is not a host or address; HarakaConfig.port: 0 is not a TCP port"
    )


def test_a_haraka_problem_is_about_a_field_of_haraka_config() -> None:
    with pytest.raises(ValueError):
        hc.HarakaProblem("imap_host", "{field} is wrong")
    with pytest.raises(ValueError):
        hc.HarakaProblem("port", "{imap_host} is wrong")


def test_domains_are_normalised(tmp_path: Path) -> None:
    config = hc.HarakaConfig(spool_dir=tmp_path, domains=(" Example.TEST. ", "alias.test"))
    assert config.domains == ("example.test", "alias.test")
