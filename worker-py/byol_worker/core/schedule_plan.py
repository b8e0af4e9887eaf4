"""The inputs of the LR and tau formulas (docs/internals.md "Schedule numbers"): K, warmup, peak LR and the
batch split, from the resolved spec, the world size W and the sample count N. The coordinator computes the
same (orchestrator/src/schedules/schedule-state.ts) and sends it; a standalone run computes it here.
test/vectors/schedules.json holds both languages to the same numbers and messages.
"""
from __future__ import annotations

import math

from ..contract import presets
from ..spec_error import SpecError, number_text


def split_batch(global_batch: int, world_size: int, micro_batch: int = 0) -> tuple[int, int]:
    """(b, a) with W*b*a = B; SpecError naming the fields when B % W != 0."""
    if world_size < 1 or global_batch % world_size:
        divisors = [str(d) for d in range(1, global_batch + 1) if global_batch % d == 0]
        raise SpecError([("spec.train.globalBatch",
                          f"{global_batch} cannot be split over spec.resources.workers = {world_size}; "
                          f"worker counts that divide it: {', '.join(divisors)}")])
    per = global_batch // world_size
    if micro_batch == 0 or micro_batch >= per:
        return per, 1
    b = max(d for d in range(1, micro_batch + 1) if per % d == 0)
    return b, per // b


def plan(resolved: dict, world_size: int, dataset_size: int) -> dict:
    """Schedule numbers for a world size and dataset size, camelCase as the coordinator's ScheduleState."""
    s = resolved["spec"]
    B, N = int(s["train"]["globalBatch"]), int(dataset_size)
    spe = N // B
    if spe == 0:
        raise SpecError([("spec.train.globalBatch", f"{B} is larger than the dataset ({N} samples)")])
    K = max(1, math.floor(s["train"]["epochs"] * spe))
    max_steps = presets()["rules"]["maxTotalSteps"]
    if K > max_steps:
        raise SpecError([("spec.train.epochs", f"{number_text(s['train']['epochs'])} epochs of {spe} steps make {K} steps, "
                          f"over the maximum of {max_steps}; lower spec.train.epochs or raise spec.train.globalBatch")])
    warmup = min(math.floor(s["optimizer"]["warmupEpochs"] * spe), K - 1)
    base = s["optimizer"]["baseLr"]
    peak = base * B / 256 if s["optimizer"]["lrScaling"] == "linear" else base
    b, a = split_batch(B, world_size, int(s["train"]["microBatch"]))
    return {"stepsPerEpoch": spe, "totalSteps": K, "warmupSteps": warmup, "peakLr": float(peak),
            "tauBase": float(s["ema"]["base"]), "tauSchedule": s["ema"]["schedule"], "globalBatch": B,
            "microBatch": b, "accumulation": a}
