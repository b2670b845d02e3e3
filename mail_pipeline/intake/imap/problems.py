"""Problems of an IMAP config, as data keyed by the field they are about.

A problem is made where its field is checked (:mod:`mail_pipeline.intake.imap.account` for
the account, :mod:`mail_pipeline.intake.imap.config` for the filters) as an
:class:`ImapProblem` (a :class:`~mail_pipeline.intake.problems.ConfigProblem` over
:data:`FIELD_LABELS`): the field's key and a sentence in which every field name is a
placeholder. Each surface renders the names its own way: ``str()`` gives the stored field's
label (``IMAP port (imap_ssl_port)``), which task logs, the Dagster event log, health and
:meth:`~mail_pipeline.intake.imap.config.EmailConfigManager.imap_targets` show; the command
line renders its option names (``--port``) with :meth:`ConfigProblem.render`.

The placeholders are ``{field}`` (the problem's own field) and ``{KEY}`` for any other field
of :data:`FIELD_LABELS` the sentence names; a value quoted in the sentence goes through
:func:`quoted` (or :func:`escaped`), so that a brace in it stays a brace (see
:mod:`mail_pipeline.intake.problems`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mail_pipeline.intake.problems import ConfigProblem, ConfigProblemError, escaped, quoted

__all__ = [
    "FIELD_LABELS",
    "RUNTIME_FIELDS",
    "STORED_FIELDS",
    "ConfigProblemError",
    "ImapProblem",
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


class ImapProblem(ConfigProblem):
    """One problem of an IMAP config: the ``field`` it is about (a key of :data:`FIELD_LABELS`,
    as the stored config names it) and its sentence; ``str()`` names the fields by their
    labels (``IMAP port (imap_ssl_port)``)."""

    LABELS = FIELD_LABELS
