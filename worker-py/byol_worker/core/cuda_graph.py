"""The whole training step as one CUDA graph (docs/architecture.md §10).

A BYOL step is a few thousand kernels. Captured once and replayed, it costs one launch, and the CPU is free to
prepare the next batch meanwhile (side_stream.py). Measured on an H200 (BENCHMARKS.md §9), the replay itself saves
only about 4% of a tuned ResNet-18 CIFAR step, which is bound by the GPU; the gain is the overlap it allows.

What makes the step capturable: the LR and tau live in 0-d device tensors that the optimizer and the EMA read
(optim.py, model.py), inputs are copied into fixed buffers, autocast does not cache casts, and nothing in the
step reads a value back to the host. The first WARMUP steps run eagerly on a side stream, so lazy set-up
(cuDNN autotuning, cuBLAS workspaces, momentum buffers) is done before the capture; they are real steps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .step import TrainStep

WARMUP = 3


class GraphedStep:
    def __init__(self, step: "TrainStep", warmup: int = WARMUP) -> None:
        self.step, self.warmup, self.eager_done = step, warmup, 0
        device = next(step.model.parameters()).device
        self.lr = torch.zeros((), device=device)
        self.tau = torch.zeros((), device=device)
        self.side = torch.cuda.Stream(device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.stats: torch.Tensor | None = None

    def run(self, v1: torch.Tensor, v2: torch.Tensor, lr: float, tau: float) -> torch.Tensor:
        """One step; [loss, z_std] on the device (a copy: the next replay overwrites the graph's own)."""
        self.lr.fill_(lr)
        self.tau.fill_(tau)
        if self.graph is None and self.eager_done < self.warmup:
            return self._eager(v1, v2, lr)
        if self.inputs is not None and (v1.shape != self.inputs[0].shape or v2.shape != self.inputs[1].shape):
            raise ValueError(f"a CUDA graph step needs the same batch shape every step: captured "
                             f"{tuple(self.inputs[0].shape)}, got {tuple(v1.shape)}")
        if self.graph is None:
            self._capture(v1, v2)
        else:
            self.inputs[0].copy_(v1)
            self.inputs[1].copy_(v2)
        if self.step.before_update is not None:  # the replay changes the parameters: fence a pending copy first
            self.step.before_update()
        self.graph.replay()
        self._float_lr(lr)
        return self.stats.clone()

    def _float_lr(self, lr: float) -> None:
        """The optimizer keeps the tensor for the graph to read; its state_dict (checkpoints) shows the float."""
        for group in self.step.optimizer.param_groups:
            group["lr"] = lr

    def _eager(self, v1: torch.Tensor, v2: torch.Tensor, lr: float) -> torch.Tensor:
        step, main = self.step, torch.cuda.current_stream()
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            # no autocast cache, as in the capture: a compiled network would otherwise recompile while capturing
            stats = step.forward_backward(v1, v2, autocast_cache=False)
            if step.before_update is not None:
                step.before_update()
            step.update(self.lr, self.tau)
            step.optimizer.zero_grad(set_to_none=True)
        main.wait_stream(self.side)
        self.eager_done += 1
        self._float_lr(lr)
        return stats

    def _capture(self, v1: torch.Tensor, v2: torch.Tensor) -> None:
        step = self.step
        self.inputs = (v1.clone(), v2.clone())
        step.optimizer.zero_grad(set_to_none=True)  # the backward in the graph allocates the gradients it writes
        graph = torch.cuda.CUDAGraph()
        # thread_local: the loader's pinning thread and the checkpoint writer may call CUDA meanwhile
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.stats = step.forward_backward(*self.inputs, autocast_cache=False)
            step.update(self.lr, self.tau)
        self.graph = graph
