"""The devices an agent offers (`--devices auto|cpu:N|cuda`) and the versions it reports in Hello.

torch is imported only when CUDA has to be probed (auto, cuda), so a CPU agent starts fast.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from dataclasses import dataclass


class DeviceError(ValueError):
    """`--devices` asks for something this machine does not have, or is malformed."""


@dataclass(frozen=True)
class Device:
    id: str            # "cpu:0", "cuda:3"
    kind: str          # "cpu" | "cuda"
    name: str
    memory_bytes: int

    @property
    def env_value(self) -> str:
        """BYOL_DEVICE for a trainer on this device: "cpu" for every CPU slot, "cuda:<i>" for a GPU."""
        return "cpu" if self.kind == "cpu" else self.id


def _total_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def cpu_slots(n: int) -> list[Device]:
    """N CPU slots `cpu:0..N-1`, each offered with an equal share of the RAM."""
    if n < 1:
        raise DeviceError(f"--devices cpu:{n}: the number of CPU slots must be >= 1")
    name = platform.processor() or platform.machine() or "cpu"
    share = _total_memory_bytes() // n
    return [Device(f"cpu:{i}", "cpu", name, share) for i in range(n)]


def cuda_devices() -> list[Device]:
    import torch  # lazily: only agents that may own GPUs pay for the import

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append(Device(f"cuda:{i}", "cuda", props.name, int(props.total_memory)))
    return out


def detect(spec: str) -> list[Device]:
    """Resolve a `--devices` value: `auto` (every GPU, else one CPU slot), `cpu` / `cpu:N`, `cuda`."""
    spec = spec.strip().lower()
    if spec == "auto":
        return cuda_devices() or cpu_slots(1)
    if spec == "cpu":
        return cpu_slots(1)
    m = re.fullmatch(r"cpu:(\d+)", spec)
    if m:
        return cpu_slots(int(m.group(1)))
    if spec == "cuda":
        found = cuda_devices()
        if not found:
            raise DeviceError("--devices cuda: torch sees no CUDA device here; use --devices auto or cpu:N")
        return found
    raise DeviceError(f"--devices {spec!r}: expected auto, cpu, cpu:N or cuda")


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """python, torch, byol_worker, grpc (and cuda when torch is already loaded) for Hello."""
    import sys

    import grpc

    out = {
        "python": platform.python_version(),
        "torch": _dist_version("torch"),
        "byol_worker": _dist_version("byol-worker"),
        "grpc": grpc.__version__,
    }
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch.version, "cuda", None):
        out["cuda"] = str(torch.version.cuda)
    return out
