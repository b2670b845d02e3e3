"""Problems of an IMAP config, as data keyed by the field they are about.

A problem is made where its field is checked (:mod:`mail_pipeline.intake.imap.account` for
the account, :mod:`mail_pipeline.intake.imap.config` for the filters) as a
:class:`ConfigProblem`: the field's key and a sentence in which every field name is a
placeholder. Each surface renders the names its own way: ``str()`` gives the stored field's
label (``IMAP port (imap_ssl_port)``), which task logs, the Dagster event log, health and
:meth:`~mail_pipeline.intake.imap.config.EmailConfigManager.imap_targets` show; the command
line renders its option names (``--port``) with :meth:`ConfigProblem.render`.

The placeholders are ``{field}`` (the problem's own field) and ``{KEY}`` for any other field
of :data:`FIELD_LABELS` the sentence names; a value quoted in the sentence goes through
:func:`quoted` (or :func:`escaped`), so that a brace in it stays a brace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Formatter
from types import MappingProxyType
from typing import Any

from mail_pipeline.errors import ConfigError

__all__ = [
    "FIELD_LABELS",
    "RUNTIME_FIELDS",
    "STORED_FIELDS",
    "ConfigProblem",
    "ConfigProblemError",
    "escaped",
    "quoted",
]

#: Every field a problem can be about or name, keyed as the stored ``email_config`` names it
#: (``imap_ssl_port``, not :class:`~mail_pipeline.intake.imap.account.ImapAccount`'s ``port``),
#: with the label the problem shows everywhere but the command line.
FIELD_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "imap_config": "imap_config",
        "imap_host": "IMAP host (imap_host)",
        "imap_ssl_port": "IMAP port (imap_ssl_port)",
        "username": "IMAP username",
        "security": "IMAP security",
        "password": "password",
        "oauth2_token": "oauth2_token",
        "oauth2_token_command": "oauth2_token_command",
        "oauth2_client_id": "oauth2_client_id",
        "oauth2_client_secret": "oauth2_client_secret",
        "oauth2_token_endpoint": "oauth2_token_endpoint",
        "oauth2_device_endpoint": "oauth2_device_endpoint",
        "oauth2_authorize_endpoint": "oauth2_authorize_endpoint",
        "oauth2_scopes": "oauth2_scopes",
        "sasl_mechanism": "sasl_mechanism",
        "provider": "provider",
        "ca_file": "ca_file",
        "post_action": "post_action",
        "move_to": "move_to",
        "max_message_bytes": "max_message_bytes",
        "filter_config": "filter_config",
        "max_age_days": "max_age_days",
        "since": "since",
        "filters": "filter",
        "folders": "folders",
        "connect_timeout": "connect_timeout",
        "read_timeout": "read_timeout",
    }
)

#: The fields that are not part of a stored ``email_config``: an :class:`ImapAccount`'s
#: timeouts, set by the fetch's resource (so a stored config never has their problems).
RUNTIME_FIELDS = ("connect_timeout", "read_timeout")

#: The fields a stored ``email_config``'s problems can be about or name.
STORED_FIELDS = tuple(name for name in FIELD_LABELS if name not in RUNTIME_FIELDS)

_OWN_FIELD = "field"


def escaped(text: str) -> str:
    """Return ``text`` with its braces doubled, to be put into a problem's sentence as it is."""
    return text.replace("{", "{{").replace("}", "}}")


def quoted(value: object) -> str:
    """Return ``repr(value)`` with its braces doubled, to be quoted in a problem's sentence."""
    return escaped(repr(value))


def _placeholders(text: str) -> list[str]:
    """Return the placeholder names of ``text``, in order.

    Raises:
        ValueError: ``text`` is not a valid template (a single brace, a conversion or format
            spec, or a placeholder that is neither ``{field}`` nor a key of FIELD_LABELS).
    """
    names: list[str] = []
    for _literal, name, spec, conversion in Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion or (name != _OWN_FIELD and name not in FIELD_LABELS):
            raise ValueError(f"problem text {text!r}: unknown placeholder {{{name}}}")
        names.append(name)
    return names


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of an IMAP config: the ``field`` it is about (a key of
    :data:`FIELD_LABELS`) and its sentence ``text``, with ``{field}`` for the field's own name
    and ``{KEY}`` for each other field it names.

    Raises:
        ValueError: ``field`` is not a key of :data:`FIELD_LABELS`, or ``text`` names an
            unknown field or has an unescaped brace (a programming error, not a user's).
    """

    field: str
    text: str

    def __post_init__(self) -> None:
        if self.field not in FIELD_LABELS:
            raise ValueError(f"{self.field!r} is not a field of FIELD_LABELS")
        _placeholders(self.text)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field the problem is about, then every other field its sentence names."""
        named = [self.field]
        for name in _placeholders(self.text):
            if name != _OWN_FIELD and name not in named:
                named.append(name)
        return tuple(named)

    def render(self, names: Mapping[str, str]) -> str:
        """Return the sentence with each field named as ``names`` says (its label from
        :data:`FIELD_LABELS` when ``names`` has none)."""

        def name(key: str) -> str:
            return names.get(key, FIELD_LABELS[key])

        shown: dict[str, Any] = {key: name(key) for key in self.fields}
        shown[_OWN_FIELD] = name(self.field)
        return self.text.format_map(shown)

    def __str__(self) -> str:
        """The sentence with the stored fields' labels (``IMAP port (imap_ssl_port)``)."""
        return self.render({})


class ConfigProblemError(ConfigError):
    """An IMAP config with ``problems``; ``str()`` is ``lead`` and the problems with the
    fields' labels, joined by "; " (:meth:`render` names them another way)."""

    def __init__(self, problems: Iterable[ConfigProblem], lead: str = "") -> None:
        self.problems = tuple(problems)
        self.lead = lead
        super().__init__(self.render({}))

    def render(self, names: Mapping[str, str]) -> str:
        """Return ``lead`` and every problem rendered with ``names``, joined by "; "."""
        return self.lead + "; ".join(problem.render(names) for problem in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the problems (the default would pass only the message back)."""
        return (type(self), (self.problems, self.lead))
