"""The OAuth2 access token of an IMAP account: given, or printed by a token command.

Errors: a token command missing or unparseable is a :class:`~mail_pipeline.errors.ConfigError`;
one that fails or prints no usable token an :class:`~mail_pipeline.errors.ImapAuthError`; one
that times out an :class:`~mail_pipeline.errors.ImapConnectError` (transient). No message ever
contains the token.
"""

from __future__ import annotations

import subprocess

from mail_pipeline.errors import ConfigError, ImapAuthError, ImapConnectError
from mail_pipeline.intake.imap.account import ImapAccount, split_token_command, token_problem

__all__ = ["OAUTH2_TOKEN_COMMAND_TIMEOUT", "resolve_oauth2_token"]

#: Seconds an ``oauth2_token_command`` may run before it is killed.
OAUTH2_TOKEN_COMMAND_TIMEOUT = 30.0


def resolve_oauth2_token(
    account: ImapAccount, *, timeout: float = OAUTH2_TOKEN_COMMAND_TIMEOUT
) -> str:
    """Return the OAuth2 access token of ``account``.

    The token is ``account.oauth2_token`` when given; otherwise ``oauth2_token_command`` is run
    (``shlex``-split, no shell, standard input closed) and its standard output, stripped of
    surrounding whitespace, is the token.

    Raises:
        ValueError: ``timeout`` is not positive.
        ConfigError: the account has no OAuth2 credential, or the command is unparseable or
            cannot be started (not found, not executable).
        ImapAuthError: the command exited non-zero or printed no usable token.
        ImapConnectError: the command did not finish within ``timeout`` seconds.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if account.oauth2_token is not None:
        return account.oauth2_token
    if account.oauth2_token_command is None:
        raise ConfigError(f"IMAP account {account.username!r} has no OAuth2 credential")
    argv = split_token_command(account.oauth2_token_command)
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImapConnectError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            f"did not finish within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"IMAP account {account.username!r}: cannot run the OAuth2 token command "
            f"{argv[0]!r}: {exc.strerror or exc}"
        ) from None
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", "replace").strip()
        detail = f": {stderr[-300:]}" if stderr else ""
        raise ImapAuthError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            f"exited with status {completed.returncode}{detail}"
        )
    try:
        token = completed.stdout.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ImapAuthError(
            f"IMAP account {account.username!r}: the OAuth2 token command {argv[0]!r} "
            "printed something that is not UTF-8"
        ) from None
    problem = token_problem(token, account.username)
    if problem is not None:
        raise ImapAuthError(problem)
    return token
