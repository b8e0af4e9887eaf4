"""The speed levers issue 10 names and the shipped step has not tried, measured with the worker benchmark on a GPU:
`STAGES=speed bash bench/gpu.sh run`. Each row is one `python -m byol_worker bench` process against the shipped
configuration of the `bench` stage (CUDA graph + side stream, ResNet-18 CIFAR b512, ResNet-50 b128).
"""
from __future__ import annotations

import json
import sys

# (row, model, batch, steps, extra flags), most promising first, since the stage stops when its time runs out:
# torch.compile of the online network replayed as a CUDA graph (fuses batch norm and ReLU, keeps the freed CPU),
# larger batches on the shipped graphed step, then compile alone (the trainer's train.compile). A compiled row
# pays its compile in the warm-up steps.
SPEED = [("resnet18-cifar-b512-compile-graph", "resnet18-cifar", 512, 20, ["--compile", "--cuda-graph", "on"]),
         ("resnet50-b128-compile-graph", "resnet50", 128, 10, ["--compile", "--cuda-graph", "on"]),
         ("resnet18-cifar-b1024-graph", "resnet18-cifar", 1024, 20, []),
         ("resnet50-b256-graph", "resnet50", 256, 10, []),
         ("resnet18-cifar-b512-compile", "resnet18-cifar", 512, 20, ["--compile", "--cuda-graph", "off"]),
         ("resnet50-b128-compile", "resnet50", 128, 10, ["--compile", "--cuda-graph", "off"])]


def stage_speed(r) -> dict:
    out = {}
    for row, model, batch, steps, extra in SPEED:
        warmup = 10 if "--compile" in extra else 5
        if r.left() < 90:
            r.results["skipped"].append(f"speed {row}: {r.left():.0f} s left")
            continue
        p = r.sh([sys.executable, "-m", "byol_worker", "bench", "--json", "--device", "cuda", "--model", model,
                  "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup), "--loader-workers", "12",
                  "--no-reference", *extra], min(240, r.left() - 10), "speed.log")
        out[row] = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"failed": p.returncode}
        r.results["stages"]["speed"] = out
        r.save()
    return out
