#!/usr/bin/env bash
# GPU checks in one device call: the CUDA-only tests, the worker benchmark, and real CIFAR-10 training runs with
# their kNN, written as results and as a BENCHMARKS.md section named after the card.
#
#   bash bench/gpu.sh prepare        # here, after `npm run setup`: builds .gpu/ (git-ignored, about 30 MB)
#   # device tool: run with carry [".gpu", "worker-py/byol_worker/gen"], timeout_s 580, command:
#   #   bash bench/gpu.sh run        # STAGES (default "tests bench quality"; "peers" adds lightly and lucidrains
#   #                                # on the same GPU, about 5 minutes; "ab" the quality A/B matrix at full width,
#   #                                # bench/py/gpu_ab.py, about 1 minute a cell; "speed" the untried speed
#   #                                # levers, bench/py/gpu_speed.py), LIMIT (default 540 seconds)
#   bash bench/gpu.sh record DIR...  # here: each DIR = one run's files; updates BENCHMARKS.md "GPU" from gpu-results.json
#
# The device image has Python 3.12 with torch but no pyzmq or jsonschema (and this workplace has no cp312 wheels
# of them): nothing run there needs them. Specs are resolved and validated here and travel resolved; the trainer
# runs in process; protobuf travels as a cp312 wheel. The data travel as the CIFAR-10 subset's JPEG pack and are
# decoded there to the same arrays.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-}
case "$stage" in
  prepare)
    PY=.venv/bin/python
    [ -d worker-py/byol_worker/gen ] || { echo "bench/gpu.sh: run npm run setup first (generated code missing)" >&2; exit 2; }
    pack=${BYOL_SHARED_DATA:-../shared/data/cifar10-jpeg}/jpeg-pack
    [ -f "$pack/train_jpeg.bin" ] || { echo "bench/gpu.sh: $pack/train_jpeg.bin missing" >&2; exit 2; }
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> "$(git rev-parse --git-common-dir)/info/exclude"
    rm -rf .gpu && mkdir -p .gpu/whl .gpu/data .gpu/specs
    cp "$pack"/* .gpu/data/
    PIP_RETRIES=0 python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .gpu/whl \
      "protobuf==$($PY -c 'import google.protobuf as p; print(p.__version__)')" 2>/dev/null \
      || echo "bench/gpu.sh: warning: no cp312 protobuf wheel; the device's own protobuf must be new enough" >&2
    harness=${BYOL_GPU_HARNESS:-../shared/gpu-harness}  # the peers' pinned sources, for STAGES=peers (never committed)
    [ -f "$harness/peers_bench.py" ] && cp -r "$harness"/{boot.py,peers_bench.py,peers} .gpu/
    $PY bench/py/gpu_run.py prepare --out .gpu/specs
    du -sh .gpu
    ;;
  run)
    : "${OUT:?bench/gpu.sh run: OUT must name the folder for results (the device tool sets it)}"
    [ -d .gpu/specs ] || { echo "bench/gpu.sh run: .gpu/ missing; run 'bash bench/gpu.sh prepare' here and carry .gpu" >&2; exit 2; }
    export PYTHONUNBUFFERED=1 PIP_RETRIES=0
    if ls .gpu/whl/*.whl >/dev/null 2>&1; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
    fi
    export PYTHONPATH=/tmp/site:$PWD/worker-py
    python3 bench/py/gpu_run.py run --specs .gpu/specs --data .gpu/data --out "$OUT" \
      ${STAGES:+--stages "$STAGES"} ${LIMIT:+--limit "$LIMIT"}
    ;;
  record)
    shift
    [ $# -gt 0 ] || { echo "usage: bash bench/gpu.sh record DIR [DIR...]" >&2; exit 2; }
    args=(); for dir in "$@"; do args+=(--results "$dir/gpu-results.json"); done
    .venv/bin/python bench/py/gpu_run.py record "${args[@]}" --benchmarks BENCHMARKS.md
    ;;
  *)
    sed -n '2,11p' "$0"; exit 2 ;;
esac
