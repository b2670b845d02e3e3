"""Configuring Haraka: settings validation, locating Haraka, the generated runtime directory.

No server is started here; :mod:`test_haraka` starts real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mail_pipeline.errors import ConfigError, MailPipelineError, SpoolError
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
    ("fields", "match"),
    [
        ({"domains": ()}, "at least one domain"),
        ({"domains": ("user@example.test",)}, "not a domain"),
        ({"domains": ("example.test",), "port": 0}, "not a TCP port"),
        ({"domains": ("example.test",), "max_message_bytes": 0}, "positive"),
    ],
)
def test_invalid_config_is_refused(tmp_path: Path, fields: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        hc.HarakaConfig(spool_dir=tmp_path, **fields)  # type: ignore[arg-type]


def test_domains_are_normalised(tmp_path: Path) -> None:
    config = hc.HarakaConfig(spool_dir=tmp_path, domains=(" Example.TEST. ", "alias.test"))
    assert config.domains == ("example.test", "alias.test")
