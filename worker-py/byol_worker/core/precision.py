"""Choose bf16 autocast and channels-last for a device (docs/architecture.md §5, docs/architecture.md §10).

`auto` means bf16 on CUDA when the GPU supports it, and on CPUs whose /proc/cpuinfo flags include
amx_bf16 or avx512_bf16 (bf16 without those units is slower than fp32); fp32 elsewhere.
Explicit values win; bf16 on a CPU without support only logs a warning.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo_path: str = "/proc/cpuinfo") -> set[str]:
    """The bf16-capable flags this CPU advertises (empty when /proc/cpuinfo is unreadable)."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split()) & set(_BF16_CPU_FLAGS)
    except OSError:
        pass
    return set()


@dataclass(frozen=True)
class Precision:
    device_type: str            # "cuda", "cpu", ...
    dtype: torch.dtype | None   # autocast dtype, None = fp32
    channels_last: bool

    @property
    def name(self) -> str:
        return "bf16" if self.dtype == torch.bfloat16 else "fp32"

    def autocast(self, cache: bool = True):
        """cache=False inside a CUDA graph capture: cached casts would outlive the capture."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype, cache_enabled=cache)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Convert weights to channels-last in place; call before wrapping in DDP."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _bf16_supported(device: torch.device, cpuinfo_path: str) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(cpu_bf16_flags(cpuinfo_path))
    return device.type == "xla"  # TPUs compute in bf16 natively


def resolve(precision: str = "auto", channels_last: Any = "auto", device: Any = "cpu",
            cpuinfo_path: str = "/proc/cpuinfo") -> Precision:
    """precision: auto|bf16|fp32 (spec.train.precision); channels_last: auto|True|False."""
    dev = torch.device(device)
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"spec.train.precision: must be auto, bf16 or fp32, got {precision!r}")
    if channels_last not in ("auto", True, False):
        raise ValueError(f"spec.train.channelsLast: must be auto, true or false, got {channels_last!r}")
    supported = _bf16_supported(dev, cpuinfo_path)
    if precision == "auto":
        use_bf16 = supported
    else:
        use_bf16 = precision == "bf16"
        if use_bf16 and not supported:
            log.warning("precision bf16 requested on %s without native bf16 support (no amx_bf16/avx512_bf16 "
                        "or GPU support): it will run, likely slower than fp32; set spec.train.precision: fp32 "
                        "or auto", dev)
    # channels-last helps convolutions on CUDA and on oneDNN CPUs in both fp32 and bf16 (docs/architecture.md §10)
    cl = dev.type in ("cuda", "cpu") if channels_last == "auto" else bool(channels_last)
    return Precision(dev.type, torch.bfloat16 if use_bf16 else None, cl)
