"""Problems of a config, as data keyed by the field they are about.

A problem is made where its field is checked, as a :class:`ConfigProblem` of its config's
kind: a subclass whose :attr:`~ConfigProblem.LABELS` lists the fields a problem can be about
or name, each with the label every surface but the command line shows. The sentence names
every field by a placeholder, so each surface renders the names its own way: ``str()``
gives the labels; a command renders its option names (``--port``) with
:meth:`ConfigProblem.render` and a plain dict from field to option.

The placeholders are ``{field}`` (the problem's own field) and ``{KEY}`` for any other field
of ``LABELS`` the sentence names; a value quoted in the sentence goes through :func:`quoted`
(or :func:`escaped`), so that a brace in it stays a brace. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from string import Formatter
from types import MappingProxyType
from typing import Any, ClassVar

from mail_pipeline.errors import ConfigError

__all__ = ["ConfigProblem", "ConfigProblemError", "escaped", "quoted"]

_OWN_FIELD = "field"


def escaped(text: str) -> str:
    """Return ``text`` with its braces doubled, to be put into a problem's sentence as it is."""
    return text.replace("{", "{{").replace("}", "}}")


def quoted(value: object) -> str:
    """Return ``repr(value)`` with its braces doubled, to be quoted in a problem's sentence."""
    return escaped(repr(value))


@dataclass(frozen=True)
class ConfigProblem:
    """One problem of a config: the ``field`` it is about (a key of :attr:`LABELS`) and its
    sentence ``text``, with ``{field}`` for the field's own name and ``{KEY}`` for each other
    field it names. Each kind of config subclasses it with its own :attr:`LABELS`.

    Raises:
        ValueError: ``field`` is not a key of :attr:`LABELS`, or ``text`` names an unknown
            field or has an unescaped brace (a programming error, not a user's).
    """

    #: The fields of this kind of config a problem can be about or name, with their labels.
    LABELS: ClassVar[Mapping[str, str]] = MappingProxyType({})

    field: str
    text: str

    def __post_init__(self) -> None:
        if self.field not in self.LABELS:
            raise ValueError(f"{self.field!r} is not a field of {type(self).__name__}.LABELS")
        self._placeholders()

    def _placeholders(self) -> list[str]:
        """Return the placeholder names of the sentence, in order.

        Raises:
            ValueError: the sentence is not a valid template (a single brace, a conversion or
                format spec, or a placeholder that is neither ``{field}`` nor a key of LABELS).
        """
        names: list[str] = []
        for _literal, name, spec, conversion in Formatter().parse(self.text):
            if name is None:
                continue
            if spec or conversion or (name != _OWN_FIELD and name not in self.LABELS):
                raise ValueError(f"problem text {self.text!r}: unknown placeholder {{{name}}}")
            names.append(name)
        return names

    @property
    def fields(self) -> tuple[str, ...]:
        """The field the problem is about, then every other field its sentence names."""
        named = [self.field]
        for name in self._placeholders():
            if name != _OWN_FIELD and name not in named:
                named.append(name)
        return tuple(named)

    def render(self, names: Mapping[str, str]) -> str:
        """Return the sentence with each field named as ``names`` says (its label from
        :attr:`LABELS` when ``names`` has none)."""

        def name(key: str) -> str:
            return names.get(key, self.LABELS[key])

        shown: dict[str, Any] = {key: name(key) for key in self.fields}
        shown[_OWN_FIELD] = name(self.field)
        return self.text.format_map(shown)

    def __str__(self) -> str:
        """The sentence with the fields' labels."""
        return self.render({})


class ConfigProblemError(ConfigError):
    """A config with ``problems``; ``str()`` is ``lead`` and the problems with the fields'
    labels, joined by "; " (:meth:`render` names them another way)."""

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
