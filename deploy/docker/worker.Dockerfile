# syntax=docker/dockerfile:1
# byol worker: `python -m byol_worker agent ...` (one agent per pod, all GPUs of the pod). Build from the repo root:
#   docker build -f deploy/docker/worker.Dockerfile -t ghcr.io/byol-project/byol-worker:0.1.0-cuda12.4 .
# The base image's CUDA build of torch is kept: the worker package accepts torch>=2.4.
# Not built in this repository's CI (no Docker engine there); see deploy/README.md.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/byol
# Dependencies first (pinned to the versions whose generated code and runtime agree; see worker-py/requirements-dev.txt).
RUN pip install grpcio==1.84.0 grpcio-tools==1.84.0 protobuf==7.36.2 pyzmq pyyaml jsonschema pillow numpy
COPY proto ./proto
COPY contract ./contract
COPY worker-py ./worker-py
# Generated protobuf code is produced in the build with the contract's copy (as scripts/gen-proto.sh does; gen/__init__.py makes it part
# of the installed package), then the package installed without touching the base image's torch.
RUN rm -rf worker-py/byol_worker/gen && mkdir -p worker-py/byol_worker/gen \
    && python -m grpc_tools.protoc -I proto --python_out=worker-py/byol_worker/gen \
       --grpc_python_out=worker-py/byol_worker/gen proto/byol/v1/*.proto \
    && touch worker-py/byol_worker/gen/__init__.py worker-py/byol_worker/gen/byol/__init__.py \
       worker-py/byol_worker/gen/byol/v1/__init__.py \
    && mkdir -p worker-py/byol_worker/gen/contract && cp contract/*.json worker-py/byol_worker/gen/contract/ \
    && pip install --no-deps ./worker-py \
    && pip uninstall -y grpcio-tools \
    && python -c "from byol_worker.proto import agent_pb2, trainer_pb2, telemetry_pb2; from byol_worker import contract; contract.presets()"
RUN groupadd --system --gid 10001 byol && useradd --system --uid 10001 --gid byol --create-home byol \
    && mkdir -p /var/lib/byol/checkpoints /var/lib/byol/data && chown -R byol:byol /var/lib/byol
USER 10001:10001
# Liveness of the agent process itself; Kubernetes watches the pod phase, and the coordinator heartbeats.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,sys; sys.exit(0 if any(b'byol_worker' in open(f'/proc/{p}/cmdline','rb').read() for p in os.listdir('/proc') if p.isdigit()) else 1)"
ENTRYPOINT ["python", "-m", "byol_worker"]
CMD ["agent", "--help"]
