"""The OAuth2 token of an account: given, or printed by a token command (and its failures)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest

from mail_pipeline.errors import ConfigError, ImapAuthError, ImapConnectError
from mail_pipeline.intake.imap.account import ImapAccount
from mail_pipeline.intake.imap.connection import connect, imap_session
from mail_pipeline.intake.imap.oauth2 import resolve_oauth2_token
from mail_pipeline_tests.fixtures.dovecot import DovecotServer
from mail_pipeline_tests.intake.imap.mailboxes import account_for

pytestmark = pytest.mark.dovecot


def _py_command(code: str, *args: str) -> str:
    return shlex.join([sys.executable, "-c", code, *args])


def test_oauth2_token_command(dovecot: DovecotServer, tmp_path: Path) -> None:
    user = dovecot.new_user()
    dovecot.set_oauth2_token(user.username, "from-the-command")
    # A script path with a space, quoted: shlex keeps it one argument, no shell is involved.
    script_dir = tmp_path / "dir with space"
    script_dir.mkdir()
    script = script_dir / "token.py"
    script.write_text("import sys\nprint(open(sys.argv[1]).read())\n")
    token_file = script_dir / "token.txt"
    token_file.write_text("from-the-command\n")
    command = shlex.join([sys.executable, str(script), str(token_file)])
    account = account_for(dovecot, user, oauth2_token_command=command)
    assert resolve_oauth2_token(account) == "from-the-command"
    with imap_session(account) as client:
        client.noop()
    assert "from-the-command" not in repr(account)


def test_oauth2_token_command_failures() -> None:
    def account(command: str) -> ImapAccount:
        return ImapAccount("127.0.0.1", 993, "u", oauth2_token_command=command)

    with pytest.raises(ImapAuthError, match="status 3: no token for you"):
        resolve_oauth2_token(
            account(_py_command("import sys; sys.stderr.write('no token for you'); sys.exit(3)"))
        )
    with pytest.raises(ImapAuthError, match="empty"):
        resolve_oauth2_token(account(_py_command("pass")))
    with pytest.raises(ImapAuthError, match="whitespace"):
        resolve_oauth2_token(account(_py_command("print('two words')")))
    with pytest.raises(ConfigError, match="cannot run"):
        resolve_oauth2_token(account("/nonexistent/token-helper --flag"))
    started = time.monotonic()
    with pytest.raises(ImapConnectError, match="did not finish"):
        resolve_oauth2_token(account(_py_command("import time; time.sleep(30)")), timeout=0.5)
    assert time.monotonic() - started < 5
    # A failing command is reported before any connection is attempted.
    with pytest.raises(ImapAuthError):
        connect(account(_py_command("raise SystemExit(1)")))
