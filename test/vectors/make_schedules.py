"""Write test/vectors/schedules.json: LR and tau cases shared by the Python and TypeScript tests.

Run from the repo root:  .venv/bin/python test/vectors/make_schedules.py
Values come from byol_worker.core.schedules (docs/internals.md formulas); JSON floats are written with
repr, so they round-trip exactly. Both languages must match them to 1e-12.
"""
import json
import os
import sys

from byol_worker.core.schedules import lr_at, tau_at

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
    with open(out, "w", encoding="utf-8") as f:
        f.write('{"_comment": "made by test/vectors/make_schedules.py; formulas in docs/internals.md",\n'
                f' "cases": [\n{rows}\n ]}}\n')
    print(f"wrote {len(cases)} cases to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
