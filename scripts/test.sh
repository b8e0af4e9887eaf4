#!/usr/bin/env bash
# The whole test suite: jest (TypeScript, real servers and real Python agents) and pytest (worker).
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_RETRIES=0
status=0
npx jest "$@" || status=1
.venv/bin/python -m pytest -q worker-py/tests bench/py || status=1
exit $status
