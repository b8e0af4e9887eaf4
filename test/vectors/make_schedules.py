"""Write test/vectors/schedules.json: LR and tau cases, and plan cases (the formulas' inputs: K, warmup, peak LR
and the batch split from the spec's numbers, W and N), shared by the Python and TypeScript tests.

Run from the repo root:  .venv/bin/python test/vectors/make_schedules.py
Values come from byol_worker.core.schedules and core.schedule_plan (docs/internals.md formulas); JSON floats are written with
repr, so they round-trip exactly. Both languages must match them to 1e-12.
"""
import json
import os
import sys

from byol_worker.core.schedule_plan import plan
from byol_worker.core.schedules import lr_at, tau_at
from byol_worker.spec_error import SpecError

# (K, warmupSteps, peakLr, tauBase, tauSchedule): the paper's 1000-epoch run at B=4096, the CIFAR preset
# (195 steps/epoch x 1000 epochs, 10 warmup epochs), and small/edge combinations.
COMBOS = [
    (312784, 3127, 3.2, 0.996, "cosine"),
    (195000, 1950, 1.0, 0.99, "cosine"),
    (1000, 100, 0.45, 0.99, "cosine"),
    (10, 3, 0.2, 0.97, "cosine"),
    (7, 0, 2.0, 0.9995, "cosine"),
    (1, 0, 0.1, 0.996, "cosine"),
    (1248, 0, 0.06, 0.99, "constant"),  # lightly's CIFAR-10 recipe: constant tau
]


# Plan inputs: the byol-cifar numbers over several W and N (as the coordinator re-plans), ImageNet, micro-batches,
# fractional epochs, and the errors (W not dividing B, B over N, K over rules.maxTotalSteps).
CIFAR = {"globalBatch": 256, "epochs": 1000, "warmupEpochs": 10, "baseLr": 0.5, "lrScaling": "none",
         "tauBase": 0.99, "tauSchedule": "cosine", "microBatch": 0}
PLANS = [(CIFAR, W, N) for W, N in [(1, 20000), (2, 20000), (4, 20000), (3, 20000), (2, 100), (8, 1000)]] + [
    ({**CIFAR, "globalBatch": 4096, "baseLr": 0.2, "lrScaling": "linear", "tauBase": 0.996}, 16, 1281167),
    ({**CIFAR, "globalBatch": 4096, "baseLr": 0.2, "lrScaling": "linear", "microBatch": 256}, 8, 1281167),
    ({**CIFAR, "microBatch": 48}, 2, 50000),
    ({**CIFAR, "globalBatch": 96, "microBatch": 5}, 4, 1000),
    ({**CIFAR, "epochs": 2.5, "warmupEpochs": 0.5}, 1, 1000),
    ({**CIFAR, "epochs": 0.001}, 1, 20000),
    ({**CIFAR, "epochs": 5}, 1, 20000),
    ({**CIFAR, "globalBatch": 512, "baseLr": 0.03, "lrScaling": "linear", "warmupEpochs": 0, "epochs": 32,
      "tauSchedule": "constant"}, 1, 50000),
    ({**CIFAR, "globalBatch": 2, "epochs": 10000}, 1, 100000000),
]


def plan_case(inp: dict, W: int, N: int) -> dict:
    spec = {"train": {"globalBatch": inp["globalBatch"], "epochs": inp["epochs"], "microBatch": inp["microBatch"]},
            "optimizer": {"warmupEpochs": inp["warmupEpochs"], "baseLr": inp["baseLr"], "lrScaling": inp["lrScaling"]},
            "ema": {"base": inp["tauBase"], "schedule": inp["tauSchedule"]}}
    try:
        return {"inputs": inp, "W": W, "N": N, "plan": plan({"spec": spec}, W, N)}
    except SpecError as e:
        return {"inputs": inp, "W": W, "N": N, "issues": [list(i) for i in e.issues]}


def steps(K: int, warmup: int) -> list[int]:
    ks = {0, max(warmup - 1, 0), warmup, K // 2, K - 1, K, K + 1, 2 * K, 1}
    return sorted(k for k in ks if k >= 0)


def main() -> None:
    cases = []
    for K, warmup, peak, tau_base, tau_schedule in COMBOS:
        for k in steps(K, warmup):
            cases.append({"K": K, "warmupSteps": warmup, "peakLr": peak, "tauBase": tau_base,
                          "tauSchedule": tau_schedule, "k": k, "lr": lr_at(k, K, warmup, peak),
                          "tau": tau_at(k, K, tau_base, tau_schedule)})
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedules.json")
    rows = ",\n".join("  " + json.dumps(c) for c in cases)  # one case per line, repr floats
    plans = ",\n".join("  " + json.dumps(plan_case(*p)) for p in PLANS)
    with open(out, "w", encoding="utf-8") as f:
        f.write('{"_comment": "made by test/vectors/make_schedules.py; formulas in docs/internals.md",\n'
                f' "cases": [\n{rows}\n ],\n "plans": [\n{plans}\n ]}}\n')
    print(f"wrote {len(cases)} cases and {len(PLANS)} plans to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
