#!/usr/bin/env bash
# One command for a newcomer: set everything up, then run the pipeline on the embedded default.
#   - installs what is missing (scripts/bootstrap.sh);
#   - creates the SQLite store under var/, the demo users alice and bob, and demo mail in the
#     spool (var/spool/inbox);
#   - starts Haraka on 127.0.0.1:${MAIL_PIPELINE_SMTP_PORT:-2525} for demo.test, so you can
#     send mail to alice@demo.test or bob@demo.test;
#   - starts the Dagster webserver and daemon (dagster dev) on
#     http://127.0.0.1:${DAGSTER_PORT:-3000} with the fetch schedule and the spool sensor on.
# Open the UI, launch email_fetch_job from Jobs (Materialize, Open launchpad), and watch it
# succeed. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/bootstrap.sh

export MAIL_PIPELINE_HOME="${MAIL_PIPELINE_HOME:-$root/var}"
mkdir -p "$MAIL_PIPELINE_HOME"
export MAIL_PIPELINE_DATABASE_URL="${MAIL_PIPELINE_DATABASE_URL:-sqlite:///$MAIL_PIPELINE_HOME/mail_pipeline.db}"
export MAIL_PIPELINE_ATTACHMENT_ROOT="${MAIL_PIPELINE_ATTACHMENT_ROOT:-$MAIL_PIPELINE_HOME/attachments}"
export MAIL_PIPELINE_SPOOL_DIR="${MAIL_PIPELINE_SPOOL_DIR:-$MAIL_PIPELINE_HOME/spool}"
export MAIL_PIPELINE_HARAKA_DOMAINS="${MAIL_PIPELINE_HARAKA_DOMAINS:-demo.test}"
export DAGSTER_HOME="${DAGSTER_HOME:-$MAIL_PIPELINE_HOME/dagster}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"

mp=.venv/bin/mail-pipeline
# The key that seals IMAP passwords: $MAIL_PIPELINE_HOME/secret.key (made once, then kept),
# found there by the CLI and by every Dagster run alike (see mail_pipeline/platform/settings.py).
$mp secret-key
$mp db upgrade
$mp demo

smtp_port="${MAIL_PIPELINE_SMTP_PORT:-2525}"
$mp haraka stop >/dev/null 2>&1 || true
$mp haraka start --port "$smtp_port"
cleanup() { "$root/$mp" haraka stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

port="${DAGSTER_PORT:-3000}"
echo "[demo] Dagster UI: http://127.0.0.1:$port  (Ctrl-C to stop)"
# From DAGSTER_HOME, whose dagster.yaml is the one in use: started from the checkout, Dagster
# would warn that it ignores the checkout's dagster.yaml.
cd "$DAGSTER_HOME"
"$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h 127.0.0.1 -p "$port"
