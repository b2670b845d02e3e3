#!/usr/bin/env bash
# Sets up everything mail_pipeline needs on a fresh Debian machine, and nothing twice:
#   - Debian packages: PostgreSQL server binaries, Dovecot IMAP, Redis (the Celery broker of
#     the distributed-executor test), isync (mbsync, for bench/),
#     Node.js and npm (for Haraka), chromium (the browser test of the Dagster UI, driven by
#     Playwright; Playwright never downloads a browser here) -- only those that are missing;
#   - a Python virtual environment in .venv with the project and its dev tools;
#   - Haraka from the npm registry, exactly as pinned by haraka/package-lock.json.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '[bootstrap] %s\n' "$*"; }

# --- Debian packages --------------------------------------------------------------------
need=()
have_pg() { command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_pg || need+=(postgresql)
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-imapd)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the browser test of the Dagster UI
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
  else
    SUDO=
  fi
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null
fi

# --- Python -------------------------------------------------------------------------------
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($python --version)"
  $python -m venv .venv
fi
stamp=.venv/.mail_pipeline-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the project and its dev tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

# --- Haraka -------------------------------------------------------------------------------
if [ -f haraka/package-lock.json ]; then
  hstamp=haraka/node_modules/.mail_pipeline-installed
  hwant=$(sha256sum haraka/package-lock.json | cut -d' ' -f1)
  if [ ! -f "$hstamp" ] || [ "$(cat "$hstamp")" != "$hwant" ]; then
    log "installing Haraka (npm ci --prefix haraka)"
    npm ci --prefix haraka --no-audit --no-fund --loglevel=error >/dev/null
    echo "$hwant" > "$hstamp"
  fi
fi

log "ready: $root/.venv"
