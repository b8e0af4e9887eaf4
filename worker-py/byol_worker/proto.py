"""Generated protobuf modules (from proto/byol/v1, made by scripts/gen-proto.sh).

grpcio-tools writes `from byol.v1 import agent_pb2`, so the generated folder goes on sys.path.
"""
import os
import sys

_GEN = os.path.join(os.path.dirname(__file__), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

try:
    from byol.v1 import agent_pb2, telemetry_pb2, trainer_pb2  # noqa: E402
except ImportError as e:  # pragma: no cover - only without the generated code
    raise ImportError(
        f"generated protobuf code missing under {_GEN}: run `npm run gen` (or bash scripts/gen-proto.sh)"
    ) from e

__all__ = ["agent_pb2", "agent_pb2_grpc", "telemetry_pb2", "trainer_pb2"]


def __getattr__(name: str):
    # The gRPC stubs load only where they are used (the agent), so a trainer runs where grpcio is older or absent.
    if name == "agent_pb2_grpc":
        from byol.v1 import agent_pb2_grpc
        return agent_pb2_grpc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
