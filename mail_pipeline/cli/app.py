"""The ``mail-pipeline`` command: the Click group, and how errors become exit codes.

Each command group lives in its own module (``users``, ``imap``, ``tasks`` ...) and adds its
commands to the group with its ``register``; what they share (the context, exit codes, output
helpers) is :mod:`mail_pipeline.cli.common`. A command returns an exit code: 0 for success, 1
for an operational failure it reported (a login refused, a task failed, the disk or the
database down); bad input (an unknown user, a malformed address, a missing option) is one line
on stderr and exit code 2, never a traceback.

Importing this module imports Click and the command modules only: each command imports the
store, Dagster's neighbours and the parsers when it runs, so ``mail-pipeline --help`` is fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from mail_pipeline.cli import (
    db,
    demo,
    haraka,
    imap,
    locks,
    mailbox,
    ops,
    secret_key,
    spool,
    tasks,
    users,
)
from mail_pipeline.cli.common import (
    CONTEXT_SETTINGS,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    OrderedGroup,
    UsageError,
    print_error,
)
from mail_pipeline.errors import EnvironmentFault, MailPipelineError

#: The command modules, in the order their commands are listed in ``--help``.
COMMAND_MODULES = (db, users, imap, tasks, haraka, spool, demo, ops, mailbox, locks, secret_key)

EPILOG = """\b
Examples:
  mail-pipeline db upgrade
  mail-pipeline users add alice alice@example.org
  mail-pipeline tasks list --status FAILED
  mail-pipeline health

Settings come from MAIL_PIPELINE_* environment variables (see deploy/README.md); the store
is $MAIL_PIPELINE_HOME/mail_pipeline.db, with ./var as the default home.
"""


@click.group(
    cls=OrderedGroup,
    context_settings=CONTEXT_SETTINGS,
    no_args_is_help=False,
    epilog=EPILOG,
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress to stderr.")
@click.version_option(
    package_name="mail_pipeline", prog_name="mail-pipeline", message="%(prog)s %(version)s"
)
def cli(verbose: bool) -> None:
    """Bring users' e-mail from IMAP mailboxes and the Haraka spool into one store.

    Run `mail-pipeline COMMAND --help` for the options of a command.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _module in COMMAND_MODULES:
    _module.register(cli)


def _usage_line(exc: click.UsageError) -> str:
    """Return a Click usage error as one line that names the command's --help."""
    where = exc.ctx.command_path if exc.ctx is not None else "mail-pipeline"
    message = exc.format_message()
    if type(exc).__name__ == "NoArgsIsHelpError" or message.startswith("Missing command"):
        group = exc.ctx.command if exc.ctx is not None else cli
        names = ""
        if isinstance(group, click.Group) and exc.ctx is not None:
            names = ", ".join(group.list_commands(exc.ctx))
        message = f"a command is missing; one of: {names}" if names else "a command is missing"
    return f"error: {message} (see {where} --help)"


def _database_error(exc: BaseException) -> str | None:
    """Return the one-line reason of a database error, None when ``exc`` is not one."""
    if "sqlalchemy" not in sys.modules:  # never imported: the command touched no database
        return None
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, SQLAlchemyError):
        return None
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return reason[0] if reason else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    context = Context()
    try:
        code = cli.main(
            args=list(sys.argv[1:] if argv is None else argv),
            prog_name="mail-pipeline",
            standalone_mode=False,
            obj=context,
        )
        return code if isinstance(code, int) else EXIT_OK
    except click.UsageError as exc:  # unknown command or option, a bad or missing value
        print_error(_usage_line(exc))
        return EXIT_USAGE
    except click.Abort:  # Ctrl-C or end of input at a prompt
        print_error("interrupted")
        return 130
    except click.ClickException as exc:
        print_error(f"error: {exc.format_message()}")
        return exc.exit_code
    except EnvironmentFault as exc:  # disk full, read-only, ...: a failed run, not bad usage
        print_error(f"error: {exc}")
        return EXIT_FAILED
    except (UsageError, MailPipelineError, ValueError) as exc:
        print_error(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except Exception as exc:
        reason = _database_error(exc)
        if reason is None:
            raise
        print_error(f"error: database: {reason}")
        return EXIT_FAILED
    finally:
        context.close()
