"""The OAuth2 access token of an IMAP account: given, printed by a token command, or from an
OAuth2 client's grant in the store.

Errors: a token command missing or unparseable is a :class:`~mail_pipeline.errors.ConfigError`;
one that fails or prints no usable token an :class:`~mail_pipeline.errors.ImapAuthError`; one
that times out an :class:`~mail_pipeline.errors.ImapConnectError` (transient). For an OAuth2
client (:mod:`mail_pipeline.oauth2.tokens`): no grant stored is
:class:`~mail_pipeline.errors.OAuth2NotAuthorizedError`, a refused grant
:class:`~mail_pipeline.errors.OAuth2GrantError` (both ``ImapAuthError``: they name
``mail-pipeline imap authorize``), a token endpoint that stays unusable
:class:`~mail_pipeline.errors.OAuth2EndpointError` (an ``ImapConnectError``). No message ever
contains the token.
"""

from __future__ import annotations

import subprocess

from mail_pipeline.errors import ConfigError, ImapAuthError, ImapConnectError
from mail_pipeline.intake.imap.account import ImapAccount, split_token_command, token_problem

__all__ = ["OAUTH2_TOKEN_COMMAND_TIMEOUT", "oauth2_credential", "resolve_oauth2_token"]

#: Seconds an ``oauth2_token_command`` may run before it is killed.
OAUTH2_TOKEN_COMMAND_TIMEOUT = 30.0


def oauth2_credential(
    account: ImapAccount, *, timeout: float = OAUTH2_TOKEN_COMMAND_TIMEOUT
) -> tuple[str, bool]:
    """Return ``(access token, may be stale)`` of ``account``: the second item is True only
    for a token an OAuth2 client's cache gave, which the login may refuse before its expiry
    (then :meth:`~mail_pipeline.intake.imap.account.AccessTokenSource.reject` it and ask
    again).

    Raises:
        The errors of :func:`resolve_oauth2_token`.
    """
    if account.uses_oauth2_client:
        source = account.token_source
        if source is None:
            raise ConfigError(
                f"IMAP account {account.username!r} has an OAuth2 client but no token source "
                "(load it with EmailConfigManager.imap_fetch_config)"
            )
        token, cached = source.access_token()
        problem = token_problem(token, account.username)
        if problem is not None:
            raise ImapAuthError(problem)
        return token, cached
    return resolve_oauth2_token(account, timeout=timeout), False


def resolve_oauth2_token(
    account: ImapAccount, *, timeout: float = OAUTH2_TOKEN_COMMAND_TIMEOUT
) -> str:
    """Return the OAuth2 access token of ``account``.

    The token is ``account.oauth2_token`` when given; for an OAuth2 client it comes from the
    account's ``token_source`` (cached or refreshed); otherwise ``oauth2_token_command`` is run
    (``shlex``-split, no shell, standard input closed) and its standard output, stripped of
    surrounding whitespace, is the token.

    Raises:
        ValueError: ``timeout`` is not positive.
        ConfigError: the account has no OAuth2 credential, the command is unparseable or
            cannot be started (not found, not executable), or an OAuth2 client account has no
            token source.
        ImapAuthError: the command exited non-zero or printed no usable token; the OAuth2
            client is not authorized yet (OAuth2NotAuthorizedError) or its grant was refused
            (OAuth2GrantError).
        ImapConnectError: the command did not finish within ``timeout`` seconds, or the
            token endpoint stayed unusable (OAuth2EndpointError).
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if account.oauth2_token is not None:
        return account.oauth2_token
    if account.uses_oauth2_client:
        return oauth2_credential(account, timeout=timeout)[0]
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
