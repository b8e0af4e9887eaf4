# syntax=docker/dockerfile:1
# byol coordinator (`byolctl serve`). Build from the repo root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t ghcr.io/byol-project/byol-coordinator:0.1.0 .
# Not built in this repository's CI (no Docker engine there); see deploy/README.md.

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its addon when no prebuilt binary can be fetched.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first: this layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY contract ./contract
COPY orchestrator ./orchestrator
# Generated TypeScript protobuf code is produced here, never copied from a workstation; tsc does not emit
# the generated .js, so it is copied beside the compiled code, and the CLI is started once as a check.
RUN mkdir -p orchestrator/src/gen \
    && npx pbjs -t static-module -w commonjs --force-number -p proto -o orchestrator/src/gen/proto.js proto/byol/v1/*.proto \
    && npx pbts -o orchestrator/src/gen/proto.d.ts orchestrator/src/gen/proto.js \
    && npx tsc -p . \
    && { [ -f dist/orchestrator/src/gen/proto.js ] || { mkdir -p dist/orchestrator/src/gen && cp orchestrator/src/gen/proto.js dist/orchestrator/src/gen/; }; } \
    && node dist/orchestrator/src/cli/main.js --help >/dev/null \
    && npm prune --omit=dev

# Python side for `GET /v1/jobs/{id}/export` (runs `python -m byol_worker export`): CPU torch is enough.
FROM node:20.20.2-bookworm-slim AS runtime-base
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.5.1 \
    && /opt/venv/bin/pip install --no-cache-dir grpcio==1.84.0 grpcio-tools==1.84.0 protobuf==7.36.2 pyzmq pyyaml jsonschema pillow numpy
COPY proto /tmp/src/proto
COPY contract /tmp/src/contract
COPY worker-py /tmp/src/worker-py
RUN cd /tmp/src && rm -rf worker-py/byol_worker/gen && mkdir -p worker-py/byol_worker/gen \
    && /opt/venv/bin/python -m grpc_tools.protoc -I proto --python_out=worker-py/byol_worker/gen \
       --grpc_python_out=worker-py/byol_worker/gen proto/byol/v1/*.proto \
    && touch worker-py/byol_worker/gen/__init__.py worker-py/byol_worker/gen/byol/__init__.py \
       worker-py/byol_worker/gen/byol/v1/__init__.py \
    && mkdir -p worker-py/byol_worker/gen/contract && cp contract/*.json worker-py/byol_worker/gen/contract/ \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps ./worker-py \
    && /opt/venv/bin/pip uninstall -y grpcio-tools && rm -rf /tmp/src

FROM runtime-base
ENV NODE_ENV=production BYOL_PYTHON=/opt/venv/bin/python
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/proto ./proto
COPY --from=build /app/contract ./contract
RUN groupadd --system --gid 10001 byol && useradd --system --uid 10001 --gid byol --home /app byol \
    && mkdir -p /var/lib/byol/store /var/lib/byol/checkpoints && chown -R byol:byol /var/lib/byol
USER 10001:10001
EXPOSE 50051 8080 5555
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.BYOL_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/orchestrator/src/cli/main.js"]
CMD ["serve"]
