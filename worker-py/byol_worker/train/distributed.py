"""torch.distributed set-up for one trainer rank, the stop agreement, and batch norm synced across ranks.

The rendezvous is a TCPStore hosted by rank 0's agent (or by `launch_local`); every generation uses its own
key prefix `gen<g>/`, so a trainer of a fenced generation can never join a newer group.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .sync_wait import RECORDER

log = logging.getLogger("byol.distributed")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    initialized: bool = False  # False: a single process with no group (W = 1 and no rendezvous)


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (also `[v6]:port` and `tcp://host:port`) -> (host, port)."""
    addr = address.removeprefix("tcp://")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"rendezvous_address {address!r}: expected host:port")
    return host.strip("[]"), int(port)


def set_threads(threads_per_worker: int, device: torch.device, world_size: int) -> int:
    """CPU ranks get threads_per_worker threads, or (0) the cores shared among the ranks on this host
    (BYOL_LOCAL_WORLD_SIZE, set by the agent or launcher; else world_size)."""
    n = int(threads_per_worker or 0)
    if n <= 0:
        local = int(os.environ.get("BYOL_LOCAL_WORLD_SIZE", world_size) or 1)
        n = max(1, (os.cpu_count() or 1) // max(1, local))
    torch.set_num_threads(n)
    return n


def init_group(address: str, rank: int, world_size: int, generation: int, device: torch.device,
               timeout_s: float = 300.0) -> DistInfo:
    """Join the generation's process group (gloo on CPU, nccl on CUDA) through the hosted TCPStore.

    With world_size 1 and no address no group is made: a lone trainer needs none.
    """
    if world_size == 1 and not address:
        return DistInfo()
    if not address:
        raise ValueError(f"rendezvous_address is empty but world_size is {world_size}")
    host, port = parse_address(address)
    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, port, world_size=None, is_master=False, timeout=timeout)
    backend = {"cuda": "nccl", "xla": "xla"}.get(device.type, "gloo")
    pstore = dist.PrefixStore(f"gen{generation}/", store)
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, store=pstore, rank=rank, world_size=world_size, timeout=timeout, **kwargs)
    log.info("joined process group: backend=%s rank=%d/%d store=%s prefix=gen%d/",
             backend, rank, world_size, address, generation)
    return DistInfo(rank=rank, world_size=world_size, initialized=True)


def teardown(info: DistInfo) -> None:
    """Leave the group together: a rank that tears down while its peer still talks to it can abort."""
    if info.initialized and dist.is_initialized():
        try:
            dist.barrier()
        except Exception as e:  # a peer already gone: nothing left to agree on
            log.warning("barrier before leaving the process group failed: %s", e)
        dist.destroy_process_group()


def agree(info: DistInfo, stop_now: bool, stop_at_step: int, checkpoint_now: bool,
          device: torch.device) -> tuple[bool, int, bool]:
    """All ranks MAX-reduce `[stop_now, stop_at_step, checkpoint_now]` so they act at the same step.

    docs/internals.md fixes the first two entries; checkpoint_now is appended because a checkpoint
    gathers every rank's RNG state and therefore needs every rank at the same boundary too.
    """
    if not info.initialized:  # alone: nothing to agree on, and no device tensor (its readback would sync a GPU)
        return bool(stop_now), int(stop_at_step), bool(checkpoint_now)
    vec = torch.tensor([int(stop_now), int(stop_at_step), int(checkpoint_now)], dtype=torch.int64, device=device)
    dist.all_reduce(vec, op=dist.ReduceOp.MAX)
    a, b, c = (int(v) for v in vec.tolist())
    return bool(a), b, bool(c)


def _all_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` (small), stacked: an all_gather, which on gloo takes a third of an all_reduce's time."""
    rows = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    with RECORDER.collective():  # a fast rank waits here for the slow one (sync_wait.py)
        dist.all_gather(rows, x.contiguous())
    return torch.stack(rows)


class _GlobalBatchNormFn(torch.autograd.Function):
    """Training-mode batch norm over the global batch: torch's SyncBatchNorm algorithm for any device.

    Forward: per-rank mean and variance, one collective, their exact combination (Chan et al.), then the
    fused normalisation kernel. Backward: per-rank sums of dy and dy*(x-mean), one collective, the closed-form
    input gradient; the weight and bias gradients stay local (DDP averages them). Elementwise work and the
    per-rank sums are fp32 (bf16 inputs are upcast); the per-channel statistics are combined, and the
    gradient's coefficients computed, in float64: the input gradient is a small residual of large terms, and
    with all of it in fp32, 2 ranks drifted from 1 rank by up to 9% of a 3-step change
    (test_train_distributed.py); now by at most 1%.
    """

    @staticmethod
    @torch.autocast("cpu", enabled=False)
    def forward(ctx, x, weight, bias, eps, bn):  # type: ignore[override]
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, c] + [1] * (x.dim() - 2)
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        n_l = torch.full((1,), float(x.numel() // c), device=x.device, dtype=torch.float64)
        # two passes of plain sums (var_mean over N, H, W was 4x slower on CPU); x - mean promotes bf16 to fp32
        mean_l = x.sum(dims, dtype=work).double() / n_l
        xmu = x - mean_l.to(work).view(shape)
        m2_l = (xmu * xmu).sum(dims).double()
        rows = _all_rows(torch.cat([mean_l, m2_l, n_l]))  # W x (2c + 1)
        means, m2s, counts = rows[:, :c], rows[:, c:2 * c], rows[:, 2 * c:]
        n = counts.sum()
        mean = (means * counts).sum(0) / n
        var = (m2s + counts * (means - mean) ** 2).sum(0) / n  # biased: what normalises
        if bn.track_running_stats and bn.running_mean is not None:
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - m).add_(mean.to(bn.running_mean.dtype), alpha=m)
            unbiased = var * n / (n - 1).clamp_min(1.0)
            bn.running_var.mul_(1 - m).add_(unbiased.to(bn.running_var.dtype), alpha=m)
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.n, ctx.work = n, work
        # the fused inference kernel with the global statistics (it upcasts bf16 inside)
        return torch.batch_norm(x, weight, bias, mean.to(work), var.to(work), False, 0.0, eps, False)

    @staticmethod
    @torch.autocast("cpu", enabled=False)
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        dims = [0] + list(range(2, x.dim()))
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xmu = x - mean.to(ctx.work).view(shape)
        sum_dy = grad.sum(dims, dtype=ctx.work).double()
        sum_dy_xmu = (grad * xmu).sum(dims).double()
        mean_dy, mean_dy_xmu = (_all_rows(torch.cat([sum_dy, sum_dy_xmu])).sum(0) / ctx.n).chunk(2)
        scale = invstd if weight is None else invstd * weight.double()
        # gx = (dy - mean_dy - xmu * invstd^2 * mean_dy_xmu) * scale, in three in-place passes
        gx = xmu.mul_((-invstd * invstd * mean_dy_xmu * scale).to(ctx.work).view(shape))
        gx.sub_((mean_dy * scale).to(ctx.work).view(shape))
        gx.addcmul_(grad, scale.to(ctx.work).view(shape))
        gw = (sum_dy_xmu * invstd).to(weight.dtype) if weight is not None and ctx.needs_input_grad[1] else None
        gb = sum_dy.to(weight.dtype) if weight is not None and ctx.needs_input_grad[2] else None
        return gx.to(x.dtype), gw, gb, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with statistics over the whole global batch, on any device (gloo included): torch's
    SyncBatchNorm refuses CPU tensors. Running stats get the unbiased variance, like BatchNorm over the whole
    batch. One collective forward and one backward per layer: on CPU they, not the arithmetic, set the step time.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        return _GlobalBatchNormFn.apply(x, self.weight, self.bias, self.eps, self)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer becomes a synced one: torch's SyncBatchNorm on CUDA, GlobalBatchNorm elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_global(module)


def _convert_global(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_global(child))
    return out
