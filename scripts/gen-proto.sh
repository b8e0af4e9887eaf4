#!/usr/bin/env bash
# Generates protobuf code from proto/ (the source of truth), apart from hand-written code:
#   TypeScript: orchestrator/src/gen/proto.{js,d.ts}   (protobufjs static module)
#   Python:     worker-py/byol_worker/gen/byol/v1/*_pb2*.py (grpcio-tools)
# and copies the job-spec contract (contract/*.json) to worker-py/byol_worker/gen/contract/, where the
# worker package reads it (byol_worker/contract.py); TypeScript imports contract/ directly.
# Skips work when the outputs are newer than every .proto file.
set -euo pipefail
cd "$(dirname "$0")/.."
protos=(proto/byol/v1/*.proto)
ts_out=orchestrator/src/gen
py_out=worker-py/byol_worker/gen

newer_than_protos() { [ -f "$1" ] && [ -z "$(find proto -name '*.proto' -newer "$1")" ]; }

if ! newer_than_protos "$ts_out/proto.d.ts"; then
  mkdir -p "$ts_out"
  npx pbjs -t static-module -w commonjs --force-number -p proto -o "$ts_out/proto.js" "${protos[@]}"
  npx pbts -o "$ts_out/proto.d.ts" "$ts_out/proto.js"
fi

if ! newer_than_protos "$py_out/byol/v1/agent_pb2.py"; then
  mkdir -p "$py_out"
  .venv/bin/python -m grpc_tools.protoc -I proto --python_out="$py_out" --pyi_out="$py_out" \
    --grpc_python_out="$py_out" "${protos[@]}"
  touch "$py_out/byol/__init__.py" "$py_out/byol/v1/__init__.py"
fi

# Always (cheap): the Python package reads its copy of the contract, installed with it as package data.
mkdir -p "$py_out/contract"
cp contract/job.schema.json contract/presets.json "$py_out/contract/"
