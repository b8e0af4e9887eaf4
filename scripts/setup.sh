#!/usr/bin/env bash
# Installs what the project needs, once: node modules, the Python venv with the worker,
# generated protobuf code, and the TypeScript build. Fast when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_RETRIES="${PIP_RETRIES:-0}"   # an unreachable index must fail fast, not stall
PY="${PYTHON:-python3}"

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

node_hash=$(hash_of package.json package-lock.json)
if ! stamp_ok node_modules/.byol-stamp "$node_hash"; then
  echo "setup: installing node modules (npm ci, about 90 s: better-sqlite3 compiles)"
  npm ci --no-audit --no-fund
  echo "$node_hash" > node_modules/.byol-stamp
fi

py_hash=$(hash_of worker-py/requirements-dev.txt worker-py/pyproject.toml)
if ! stamp_ok .venv/.byol-stamp "$py_hash"; then
  echo "setup: creating the Python venv (.venv) with the worker (about 40 s)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # pip warns once per package about on-disk index folders it cannot use; those lines say nothing.
  # python -m pip, not .venv/bin/pip: that script's first line names the folder the venv was made in
  quiet_pip() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v 'is ignored: it is neither' || true; }; }
  quiet_pip -r worker-py/requirements-dev.txt
  quiet_pip --no-deps -e worker-py
  echo "$py_hash" > .venv/.byol-stamp
fi

# The dashboard's browser test drives Debian's chromium (test/dashboard-browser.test.ts); install it once.
if [ ! -x /usr/bin/chromium ] && [ -z "${BYOL_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium for the dashboard's browser test (apt-get, about a minute)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing; the dashboard's browser test needs it (apt-get install chromium, or set BYOL_CHROMIUM)" >&2
  fi
fi

bash scripts/gen-proto.sh
npx tsc -p . --incremental --tsBuildInfoFile dist/.tsbuildinfo
