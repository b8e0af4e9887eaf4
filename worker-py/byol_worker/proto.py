"""Generated protobuf modules (from proto/byol/v1, made by scripts/gen-proto.sh).

grpcio-tools writes `from byol.v1 import agent_pb2`, so the generated folder goes on sys.path.
"""
import os
import sys

_GEN = os.path.join(os.path.dirname(__file__), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

try:
    from byol.v1 import agent_pb2, agent_pb2_grpc, telemetry_pb2, trainer_pb2  # noqa: E402
except ImportError as e:  # pragma: no cover - only without the generated code
    raise ImportError(
        f"generated protobuf code missing under {_GEN}: run `npm run gen` (or bash scripts/gen-proto.sh)"
    ) from e

__all__ = ["agent_pb2", "agent_pb2_grpc", "telemetry_pb2", "trainer_pb2"]
