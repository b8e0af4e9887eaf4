"""LR and tau schedules of the global optimizer step (docs/internals.md "Schedule numbers").

Plain Python floats and the math module, so Python and TypeScript agree to 1e-12
(test/vectors/schedules.json).
"""
from __future__ import annotations

import math


def _check(k: int, K: int) -> None:
    if K < 1:
        raise ValueError(f"totalSteps K must be >= 1, got {K}")
    if k < 0:
        raise ValueError(f"step k must be >= 0, got {k}")


TAU_SCHEDULES = ("cosine", "constant")


def tau_at(k: int, K: int, tau_base: float, schedule: str = "cosine") -> float:
    """cosine: tau(k) = 1 - (1 - tau_base) * (cos(pi * min(k, K) / K) + 1) / 2, so tau(0) = tau_base and tau(K) = 1
    [P §3.3]; constant: tau(k) = tau_base (lightly's CIFAR-10 benchmark, lucidrains)."""
    _check(k, K)
    if not 0.0 <= tau_base <= 1.0:
        raise ValueError(f"tauBase must be in [0, 1], got {tau_base}")
    if schedule == "constant":
        return tau_base
    if schedule not in ("", "cosine"):
        raise ValueError(f"tauSchedule must be one of {', '.join(TAU_SCHEDULES)}, got {schedule!r}")
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * min(k, K) / K) + 1.0) / 2.0


def lr_at(k: int, K: int, warmup_steps: int, peak_lr: float) -> float:
    """Linear warmup from 0, then cosine decay to 0 at k = K.

    lr(k) = peak * k / warmup for k < warmup, else
    peak * 0.5 * (1 + cos(pi * (min(k, K) - warmup) / (K - warmup))); k is clipped at K as in the
    official code, so lr(k >= K) = 0.
    """
    _check(k, K)
    if not 0 <= warmup_steps < K:
        raise ValueError(f"warmupSteps must be in [0, K-1] = [0, {K - 1}], got {warmup_steps}")
    if k < warmup_steps:
        return peak_lr * k / warmup_steps
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * (min(k, K) - warmup_steps) / (K - warmup_steps)))
