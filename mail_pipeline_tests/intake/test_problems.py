"""Config problems as data keyed by field, for any config that names its fields."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from mail_pipeline.errors import ConfigError
from mail_pipeline.intake.problems import ConfigProblem, ConfigProblemError, quoted


class _Problem(ConfigProblem):
    LABELS = MappingProxyType({"port": "Server.port", "host": "Server.host"})


def test_a_problem_names_its_fields_by_label_unless_told_otherwise() -> None:
    problem = _Problem("port", f"{{field}} {quoted('{x}')} needs {{host}}")
    assert problem.fields == ("port", "host")
    assert str(problem) == "Server.port '{x}' needs Server.host"
    assert problem.render({"port": "--port"}) == "--port '{x}' needs Server.host"


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("nope", "{field} is wrong"),
        ("port", "{nope} is wrong"),
        ("port", "{field!r} is wrong"),
        ("port", "{field:>9} is wrong"),
        ("port", "a lone { brace"),
    ],
)
def test_a_problem_about_an_unknown_field_is_a_programming_error(field: str, text: str) -> None:
    with pytest.raises(ValueError):
        _Problem(field, text)
    with pytest.raises(ValueError):
        ConfigProblem("port", "{field} is wrong")  # the base knows no fields


def test_the_error_carries_its_problems_and_keeps_them_through_pickle() -> None:
    problems = [_Problem("port", "{field}: 0 is not a port"), _Problem("host", "{field}: ''")]
    error = ConfigProblemError(problems, "bad server: ")
    assert isinstance(error, ConfigError)
    assert str(error) == "bad server: Server.port: 0 is not a port; Server.host: ''"
    assert error.render({"host": "--host"}).endswith("; --host: ''")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ConfigProblemError)
    assert (copy.problems, copy.lead, str(copy)) == (error.problems, error.lead, str(error))
