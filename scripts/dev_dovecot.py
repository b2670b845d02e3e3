"""Start a throw-away Dovecot (the test suite's rig) with one mailbox, for trying the IMAP path.

    .venv/bin/python scripts/dev_dovecot.py

Prints the settings of a fresh IMAP user (host, IMAPS port, login, password, the test CA) and
the ``mail-pipeline`` commands that configure, test and fetch it; appends two messages to its
INBOX; keeps running until Ctrl-C, then removes everything.
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mail_pipeline_tests.fixtures.dovecot import DovecotServer  # noqa: E402


def main() -> None:
    server = DovecotServer()
    server.start()
    try:
        user = server.new_user()
        for n in (1, 2):
            server.append(
                user.username,
                (
                    f"From: demo@example.net\r\nTo: {user.username}@example.org\r\n"
                    f"Subject: dev mailbox message {n}\r\nMessage-ID: <dev-{n}-{user.username}>\r\n"
                    f"\r\nhello {n}\r\n"
                ).encode(),
            )
        ca = shlex.quote(str(server.ca_cert_path))
        print(
            f"Dovecot on {server.host}: IMAPS {server.imaps_port}, IMAP+STARTTLS {server.imap_port}"
        )
        print(f"login {user.username}  password {user.password}  CA {server.ca_cert_path}")
        print("\nTry it:\n")
        print(f"  export IMAP_PW={shlex.quote(user.password)}")
        print("  .venv/bin/mail-pipeline users add carol carol@example.org")
        print(
            f"  .venv/bin/mail-pipeline imap set carol --host {server.host} "
            f"--port {server.imaps_port} --login {user.username} --ca-file {ca} "
            "--password-env IMAP_PW --max-age-days 30"
        )
        print("  .venv/bin/mail-pipeline imap test carol")
        print("  .venv/bin/mail-pipeline imap fetch carol\n")
        print(
            "(the password is sealed with the demo's key, var/secret.key -- made by "
            "scripts/demo.sh or `mail-pipeline secret-key`; Ctrl-C stops Dovecot)",
            flush=True,
        )
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.close()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
