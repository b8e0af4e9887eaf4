"""Worker step benchmark (docs/architecture.md §10): our step versus a plain PyTorch BYOL reference, same model.

    .venv/bin/python bench/py/worker_step.py [--only r18|r18-fp32|r18-compile|r50] [--quick]

Runs `python -m byol_worker bench --json` (worker-py/byol_worker/bench.py, see bench/worker.md) for each
configuration below, one after another, and collects the rows: full step with on-device augmentation,
step without augmentation, augmentation alone, the fp32 reference with per-sample PIL augmentation in
DataLoader workers, and full / reference (goal >= 2.5x). Each configuration is one process, so its
reference runs in the same invocation as our step.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import PYTHON, REPO, LoadWatch, log, setup_logging, write_result

R18 = ["--model", "resnet18-cifar", "--batch", "128", "--steps", "5", "--warmup", "1", "--threads", "2",
       "--loader-workers", "2"]
CONFIGS = {
    # name: bench flags
    "r18": R18,
    # our path forced to fp32: separates what bf16 buys from the rest (batching, channels-last, foreach EMA)
    "r18-fp32": ["--model", "resnet18-cifar", "--batch", "128", "--steps", "5", "--warmup", "1", "--threads", "2",
                 "--precision", "fp32", "--no-reference"],
    # train.compile: true (inductor's fused kernels for batch norm, ReLU and the elementwise backward); the
    # first (warm-up) step pays the compile
    "r18-compile": [*R18, "--compile"],
    "r50": ["--model", "resnet50", "--batch", "64", "--steps", "3", "--warmup", "1", "--threads", "2",
            "--loader-workers", "2"],
}
QUICK = ["--width", "0.0625", "--hidden", "64", "--batch", "8", "--steps", "2", "--warmup", "1", "--threads", "1",
         "--loader-workers", "1"]


def run_one(name: str, flags: list[str]) -> dict:
    cmd = [PYTHON, "-m", "byol_worker", "bench", "--json", *flags]
    log.info("%s: %s", name, " ".join(cmd[1:]))
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{name}: bench exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    rows = ", ".join(f"{k} {v['ms_per_step']:.0f} ms ({v['images_per_s']:.1f} img/s)" for k, v in r["results"].items())
    log.info("  %s%s", rows, f"; full/reference {r['full_vs_reference']:.2f}x" if "full_vs_reference" in r else "")
    return {"command": "python -m byol_worker bench " + " ".join(cmd[4:]), **r}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append", help="run only these (repeatable)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny encoder and heads, seconds")
    a = ap.parse_args(argv)
    setup_logging()
    watch = LoadWatch()
    names = a.only or list(CONFIGS)
    if a.quick:  # a compile alone takes minutes
        names = [n for n in names if "--compile" not in CONFIGS[n]]
    out = {}
    for name in names:
        flags = CONFIGS[name]
        if a.quick:  # keep the model choice, shrink everything else
            flags = flags[:2] + QUICK + (["--precision", "fp32", "--no-reference"] if "--no-reference" in flags else [])
        out[name] = run_one(name, flags)
    ratios = {n: r["full_vs_reference"] for n, r in out.items() if "full_vs_reference" in r}
    write_result("worker-step" + ("-quick" if a.quick else ""), {"configs": out, "full_vs_reference": ratios,
                                                                  "goal": ">= 2.5x full vs reference"}, watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
