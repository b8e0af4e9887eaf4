"""Which device a trainer, kNN, export or bench runs on: "auto", "cpu", "cuda", "cuda:1", "xla" resolved to an
indexed device. In core/ because training, evaluation and the benchmark all choose one the same way.
"""
from __future__ import annotations

import os

import torch


def resolve_device_name(want: str, cuda_count: int, local_rank: int = 0) -> str:
    """The device a trainer (or knn, export, bench) runs on, as an indexed name: "cpu", "cuda:<i>", "xla...".

    "auto" means CUDA when a GPU is visible, else CPU. A CUDA device without an index takes the local rank's GPU
    (the agent and the standalone launcher pass "cuda:<i>"; in process and under torchrun the local rank says which),
    because torch.cuda.set_device refuses an unindexed device. Pure: no CUDA call, so it is tested on any host.
    """
    want = (want or "auto").strip()
    if want == "auto":
        want = "cuda" if cuda_count > 0 else "cpu"
    if want in ("cpu", "cpu:0"):
        return "cpu"
    if want.startswith("xla"):
        return want
    try:
        dev = torch.device(want)
    except RuntimeError as e:
        raise ValueError(f"device {want!r}: {e}") from e
    if dev.type != "cuda":
        raise ValueError(f"device {want!r}: only cpu, cuda and xla trainers are implemented")
    if cuda_count < 1:
        raise ValueError(f"device {want!r}: CUDA is not available on this host (set spec.resources.device: cpu)")
    index = dev.index if dev.index is not None else local_rank % cuda_count
    if index >= cuda_count:
        raise ValueError(f"device {want!r}: this host has {cuda_count} CUDA device(s), cuda:0..cuda:{cuda_count - 1}")
    return f"cuda:{index}"


def local_rank_from_env() -> int:
    """This process's rank on its host: BYOL_LOCAL_RANK (our launchers), else LOCAL_RANK (torchrun), else 0."""
    for name in ("BYOL_LOCAL_RANK", "LOCAL_RANK"):
        v = os.environ.get(name, "")
        if v.isdigit():
            return int(v)
    return 0


def pick_device(want: str, local_rank: int | None = None) -> torch.device:
    """Resolve "auto", "cpu", "cuda", "cuda:1" ... to an indexed device and make a CUDA one current;
    ValueError says what to change."""
    rank = local_rank_from_env() if local_rank is None else local_rank
    name = resolve_device_name(want, torch.cuda.device_count() if torch.cuda.is_available() else 0, rank)
    if name.startswith("xla"):
        return _xla_device(name)
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: time cuDNN's choices once
    return dev


def _xla_device(want: str) -> torch.device:
    """A TPU (or other XLA) device through torch_xla's PJRT runtime. Written against torch_xla's
    documented API (torch_xla.device(), the "xla" process-group backend); not run on TPUs here."""
    try:
        import torch_xla
        import torch_xla.distributed.xla_backend  # noqa: F401  registers the "xla" backend
    except ImportError as e:
        raise ValueError(f"device {want!r}: torch_xla is not installed on this host; install torch_xla "
                         "(PJRT runtime, PJRT_DEVICE=TPU) or set spec.resources.device: cpu or cuda") from e
    return torch_xla.device()
