#!/usr/bin/env bash
# Runs the benchmarks of docs/architecture.md §10 and writes one JSON per benchmark to bench/out/ (gitignored);
# BENCHMARKS.md explains them and records the numbers.
#
#   bash bench/run.sh                      # all of them (about 25 minutes on an idle 2-core machine)
#   bash bench/run.sh worker overhead      # some: worker, overhead, telemetry, checkpoint, recovery, syncbn
#   bash bench/run.sh --quick              # smoke run of all (a few minutes; numbers mean nothing)
#
# Measure on an idle machine: each script warns when the load average is above 1 at its start, and
# every result file records the load and the CPU busy time during the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
quick=()
picked=()
for a in "$@"; do
  case "$a" in
    --quick) quick=(--quick) ;;
    worker|overhead|telemetry|checkpoint|recovery|syncbn) picked+=("$a") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$a'; use --quick and/or worker overhead telemetry checkpoint recovery syncbn" >&2; exit 2 ;;
  esac
done
[ ${#picked[@]} -gt 0 ] || picked=(worker overhead telemetry checkpoint recovery syncbn)
[ -x "$PY" ] || { echo "bench/run.sh: $PY missing; run 'bash scripts/setup.sh' first" >&2; exit 2; }
[ -f dist/orchestrator/src/cli/main.js ] || { echo "bench/run.sh: the CLI is not built; run 'bash scripts/setup.sh' first" >&2; exit 2; }
mkdir -p bench/out
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg) (1-min should be < 1 for real numbers)"
status=0
for b in "${picked[@]}"; do
  echo "=== $b"
  case "$b" in
    worker) script=worker_step.py ;;
    overhead) script=overhead.py ;;
    telemetry) script=telemetry.py ;;
    checkpoint) script=checkpoint_stall.py ;;
    recovery) script=recovery.py ;;
    syncbn) script=syncbn.py ;;
  esac
  "$PY" "bench/py/$script" "${quick[@]}" || { echo "bench: $b FAILED" >&2; status=1; }
  if [ "$b" = checkpoint ] && [ ${#quick[@]} -eq 0 ]; then  # and with the step filling both cores
    "$PY" "bench/py/$script" --threads 2 --repeats 2 || { echo "bench: $b (2 threads) FAILED" >&2; status=1; }
  fi
done
ls -1 bench/out/*.json
exit $status
