#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set up what is missing, lint and check the
# formatting, type-check (strict, package and tests), then
# pytest against real PostgreSQL, Dovecot and Haraka servers that the session starts itself.
# Extra arguments go to pytest (for example: scripts/test.sh -k spool).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "[test] ruff"
.venv/bin/ruff check mail_pipeline mail_pipeline_tests bench scripts
.venv/bin/ruff format --check mail_pipeline mail_pipeline_tests bench scripts
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
exec .venv/bin/pytest -p no:cacheprovider "$@"
