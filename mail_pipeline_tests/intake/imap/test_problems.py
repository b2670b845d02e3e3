"""Config problems as data keyed by field: rendered with the stored labels by default, with
any other names on request, and complete over the fields a stored config can get wrong."""

from __future__ import annotations

import pickle

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.imap.account import ImapAccount, account_problems
from mail_pipeline.intake.imap.config import EmailConfigManager
from mail_pipeline.intake.imap.problems import (
    FIELD_LABELS,
    RUNTIME_FIELDS,
    STORED_FIELDS,
    ConfigProblemError,
    ImapProblem,
)
from mail_pipeline.intake.problems import ConfigProblem
from mail_pipeline_tests.intake.imap.bad_configs import BAD_CONFIGS, bad_config


def _problems_of(field: str) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigProblemError) as caught:
        EmailConfigManager.validate_imap_config(bad_config(field))
    return caught.value.problems


def test_a_problem_names_its_fields_by_label_unless_told_otherwise() -> None:
    problem = ImapProblem("move_to", "{post_action} 'move' needs {field} (a folder)")
    assert problem.fields == ("move_to", "post_action")
    assert str(problem) == "post_action 'move' needs move_to (a folder)"
    assert (
        problem.render({"move_to": "--move-to"}) == "post_action 'move' needs --move-to (a folder)"
    )
    port = ImapProblem("imap_ssl_port", "{field} must be a number from 1 to 65535, not 0")
    assert str(port) == "IMAP port (imap_ssl_port) must be a number from 1 to 65535, not 0"
    assert port.render({"imap_ssl_port": "--port"}).startswith("--port must be")


def test_braces_in_a_value_stay_braces() -> None:
    """A user's value is quoted into the sentence, never read as a placeholder."""
    with pytest.raises(ConfigProblemError) as caught:
        ImapAccount(" {imap_host}", 993, "{field}", oauth2_token="{x}", oauth2_token_command="c")
    error = caught.value
    assert "IMAP host (imap_host) ' {imap_host}' has surrounding whitespace" in str(error)
    assert "IMAP account '{field}': give only one of oauth2_token or" in str(error)
    assert "--host ' {imap_host}' has surrounding whitespace" in error.render(
        {"imap_host": "--host"}
    )


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("port", "{field} is wrong"),  # ImapAccount's name, not the stored config's
        ("imap_host", "{nope} is wrong"),
        ("imap_host", "{field!r} is wrong"),
        ("imap_host", "{field:>9} is wrong"),
        ("imap_host", "{0} is wrong"),
        ("imap_host", "a lone { brace"),
    ],
)
def test_a_problem_about_an_unknown_field_is_a_programming_error(field: str, text: str) -> None:
    with pytest.raises(ValueError):
        ImapProblem(field, text)


def test_the_error_carries_its_problems_and_keeps_them_through_pickle() -> None:
    problems = _problems_of("move_to")
    error = ConfigProblemError(problems, "invalid IMAP config: ")
    assert isinstance(error, ConfigError)
    assert str(error) == "invalid IMAP config: post_action 'move' needs move_to (a folder)"
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ConfigProblemError)
    assert (copy.problems, copy.lead, str(copy)) == (error.problems, error.lead, str(error))


def test_the_fields_are_the_stored_ones_and_the_runtime_ones() -> None:
    assert set(STORED_FIELDS) | set(RUNTIME_FIELDS) == set(FIELD_LABELS)
    assert not set(STORED_FIELDS) & set(RUNTIME_FIELDS)
    reported = account_problems(
        {"host": "h", "port": 1, "username": "a", "password": "p", "read_timeout": 0}
    )
    assert [p.field for p in reported] == ["read_timeout"]


def test_every_stored_field_a_problem_can_be_about_has_a_bad_config() -> None:
    """The catalogue the problem tests (core and CLI) iterate over covers every stored field:
    a new field in FIELD_LABELS without a bad config here fails, and so does a problem that
    names a field outside STORED_FIELDS."""
    assert set(BAD_CONFIGS) == set(STORED_FIELDS)
    named: set[str] = set()
    for field in BAD_CONFIGS:
        problems = _problems_of(field)
        assert field in {p.field for p in problems}, field
        named.update(name for p in problems for name in p.fields)
    assert named <= set(STORED_FIELDS)
