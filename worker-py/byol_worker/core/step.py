"""One BYOL optimizer step on one device: the trainer's hot loop (docs/algorithm.md §2-§3).

The caller owns the loop, data, distributed setup and schedules; it passes the online module
(optionally DDP-wrapped `model.online_network()`), and per step the micro-batches, LR and tau.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Callable, Sequence

import torch
from torch import nn

from .cuda_graph import GraphedStep
from .loss import byol_loss, z_std
from .model import BYOLModel
from .precision import Precision


class TrainStep:
    """`run()` = `accumulation` micro-batches, then exactly one optimizer step and one EMA update.

    online: a module with forward(v1, v2) -> (p1, p2, z1, z2), e.g. DDP(model.online_network());
    default model.online_network(). With DDP, gradients sync only on the last micro-batch.
    """

    def __init__(self, model: BYOLModel, optimizer: torch.optim.Optimizer, precision: Precision,
                 accumulation: int = 1, online: nn.Module | None = None, cuda_graph: bool = False):
        """cuda_graph: capture the whole step once and replay it (cuda_graph.py); one CUDA device, no
        accumulation, no DDP."""
        if accumulation < 1:
            raise ValueError(f"accumulation must be >= 1, got {accumulation}")
        self.model = model
        self.optimizer = optimizer
        self.precision = precision
        self.accumulation = accumulation
        self.online = online if online is not None else model.online_network()
        self._has_no_sync = hasattr(self.online, "no_sync")
        # XLA tensors are lazy: cut the graph once per optimizer step, or it grows across steps.
        self._xla_sync = _xla_sync if next(model.parameters()).device.type == "xla" else None
        # called before the first change to parameters or optimizer state: a background checkpoint copy of
        # them (AsyncSaver.fence) overlaps this step's forward and backward, and must end before that change
        self.before_update: Callable[[], None] | None = None
        self.graph = None
        if cuda_graph:
            if accumulation != 1 or self._has_no_sync or next(model.parameters()).device.type != "cuda":
                raise ValueError("a CUDA graph step needs one CUDA device, accumulation 1 and no DDP")
            self.graph = GraphedStep(self)

    def update_only_tensors(self) -> list[torch.Tensor]:
        """What only the optimizer step and the EMA update change (parameters, optimizer state), so a copy of
        it may run until `before_update` is called. Batch-norm buffers are not: the forward changes them."""
        return list(self.model.parameters()) + [t for st in self.optimizer.state.values() for t in st.values()
                                                if isinstance(t, torch.Tensor)]

    def run(self, micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]], lr: float, tau: float) -> dict:
        """micro_batches: `accumulation` pairs of float NCHW views on the device.

        Returns a StepResult: ["loss"] the mean symmetric loss and ["z_std"] the collapse monitor, as Python
        floats read from the device when first asked for.
        """
        if len(micro_batches) != self.accumulation:
            raise ValueError(f"expected {self.accumulation} micro-batches (accumulation), got {len(micro_batches)}")
        self.model.train()  # the target also runs in train mode: batch statistics [spec §6]
        if self.graph is not None:
            return StepResult(self.graph.run(*micro_batches[0], lr, tau))
        stats = [self.forward_backward(v1, v2, i == len(micro_batches) - 1) for i, (v1, v2) in enumerate(micro_batches)]
        if self.before_update is not None:
            self.before_update()
        self.update(lr, tau)
        self.optimizer.zero_grad(set_to_none=True)
        if self._xla_sync is not None:
            self._xla_sync()
        return StepResult(torch.stack(stats).mean(dim=0))

    def forward_backward(self, v1: torch.Tensor, v2: torch.Tensor, last: bool = True,
                         autocast_cache: bool = True) -> torch.Tensor:
        """One micro-batch's forward and backward (gradients accumulate); [loss, z_std] on the device."""
        prec = self.precision
        v1, v2 = prec.prepare_input(v1), prec.prepare_input(v2)
        sync = self.online.no_sync() if self._has_no_sync and not last else contextlib.nullcontext()
        with sync:
            with prec.autocast(autocast_cache):
                p1, p2, z1, z2 = self.online(v1, v2)
                with torch.no_grad():
                    t1 = self.model.target_forward(v1)
                    t2 = self.model.target_forward(v2)
            loss = byol_loss(p1, p2, t1, t2)  # fp32 inside
            (loss / self.accumulation).backward()
        return torch.stack([loss.detach(), z_std(z1, z2)])

    def update(self, lr: float | torch.Tensor, tau: float | torch.Tensor) -> None:
        """The optimizer step at `lr`, then the EMA update with `tau` (floats, or 0-d device tensors)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.model.update_target(tau)


class StepResult(Mapping):
    """{"loss", "z_std"} of a step, still on the device until read. Reading waits for the step: the trainer reads
    step k's after it has queued step k+1, so a GPU never idles while the host prepares the next step."""

    def __init__(self, stats: torch.Tensor) -> None:
        self._stats, self._values = stats, None

    def _read(self) -> dict:
        if self._values is None:
            loss, spread = self._stats.tolist()  # the one host sync of a step
            self._values = {"loss": loss, "z_std": spread}
        return self._values

    def __getitem__(self, key: str) -> float:
        return self._read()[key]

    def __iter__(self):
        return iter(("loss", "z_std"))

    def __len__(self) -> int:
        return 2


def _xla_sync() -> None:
    import torch_xla
    torch_xla.sync()
