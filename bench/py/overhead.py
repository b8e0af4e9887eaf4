"""Orchestration overhead (docs/architecture.md §10: a job under the coordinator reaches >= 0.99x the standalone rate).

    .venv/bin/python bench/py/overhead.py [--order ABBA] [--epochs 3] [--quick]

The same tiny 2-rank job (synthetic data, quarter-width ResNet-18 CIFAR, gloo on CPU) runs
  A: standalone, `python -m byol_worker train --spec ... --nproc 2` (its telemetry to our own PULL);
  B: under a real `byolctl serve` (local launcher: it spawns the agents, they spawn the trainers), submitted
     over REST, metrics read back from REST `/v1/jobs/{id}/metrics`;
in the order given (default A B B A, so slow drift of the machine cancels). Step rates come from the
trainers' own per-step timing (telemetry), start-up and the final step excluded; the ratio is B / A.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

from common import OUT, PYTHON, REPO, CpuSampler, LoadWatch, log, need_build, setup_logging, write_result
from serve import Serve
from step_rate import MetricCollector, steady


def job_spec(name: str, epochs: int, samples: int) -> dict:
    return {
        "apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": name},
        "spec": {
            "preset": "byol-cifar",
            "data": {"format": "synthetic", "numSamples": samples, "numClasses": 10, "imageSize": 32,
                     "loaderWorkers": 0},
            "model": {"backbone": "resnet18-cifar", "width": 0.25, "projector": {"hiddenDim": 512, "outDim": 128},
                      "predictor": {"hiddenDim": 512}},
            "optimizer": {"warmupEpochs": 0.1},
            "train": {"epochs": epochs, "globalBatch": 64, "precision": "auto", "seed": 0, "logEverySteps": 50},
            "resources": {"workers": 2, "device": "cpu", "threadsPerWorker": 1},
            "checkpoint": {"everySteps": 0, "keepLast": 1},
            "eval": {"knn": {"enabled": False}},
        },
    }


def run_standalone(doc: dict, logs: str, tag: str) -> dict:
    work = tempfile.mkdtemp(prefix="byol-bench-standalone-")
    spec = os.path.join(work, "job.yaml")
    with open(spec, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f)
    col = MetricCollector()
    t0 = time.monotonic()
    with open(os.path.join(logs, f"overhead-{tag}.log"), "w", encoding="utf-8") as lf:
        proc = subprocess.Popen([PYTHON, "-m", "byol_worker", "train", "--spec", spec, "--nproc", "2", "--resume", "none",
                                 "--checkpoint-dir", os.path.join(work, "ckpt"), "--telemetry", col.address],
                                cwd=REPO, stdout=lf, stderr=subprocess.STDOUT)
        cpu = CpuSampler(proc.pid)
        while proc.poll() is None:
            cpu.sample()
            time.sleep(1.0)
        code = proc.returncode
    wall = time.monotonic() - t0
    time.sleep(0.3)  # the last frames
    points = col.close()
    shutil.rmtree(work, ignore_errors=True)
    if code != 0:
        raise RuntimeError(f"standalone run exited {code}; see {logs}/overhead-{tag}.log")
    return {"mode": "standalone", "points": points, "job_wall_s": round(wall, 1),
            "launcher_cpu_s": cpu.total_s()}


def run_coordinated(doc: dict, logs: str, tag: str, timeout_s: float) -> dict:
    srv = Serve(os.path.join(logs, f"overhead-{tag}.log"))
    try:
        t0 = time.monotonic()
        job = srv.submit(doc)
        cpu = CpuSampler(srv.proc.pid)  # the coordinator and its agents, not the trainers
        while srv.job(job["id"])["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"job {job['id']} did not finish in {timeout_s} s")
            cpu.sample()
            time.sleep(1.0)
        end = srv.wait_state(job["id"], ("SUCCEEDED",), 1)
        wall = time.monotonic() - t0
        time.sleep(0.5)  # the ingest flushes every 250 ms
        points = srv.metrics(job["id"])
        if len(end["generations"]) != 1:
            raise RuntimeError(f"the job needed {len(end['generations'])} generations; a fault spoiled the run")
        return {"mode": "coordinator", "points": points, "job_wall_s": round(wall, 1), "totalSteps": end["totalSteps"],
                "coordinator_and_agents_cpu_s": cpu.total_s(),
                "processes": {str(pid): {"args": a, "cpu_s": round(c, 2)} for pid, (a, c) in cpu.seen.items()}}
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--order", default="ABBA", help="A = standalone, B = under the coordinator (default ABBA)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of 100 steps each (default 3)")
    ap.add_argument("--skip", type=int, default=10, help="start-up steps left out of the rate (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20 steps per run, order AB")
    a = ap.parse_args(argv)
    setup_logging()
    need_build()
    if set(a.order) - {"A", "B"}:
        ap.error("--order: only the letters A and B")
    samples, epochs, order, skip = (6400, a.epochs, a.order, a.skip) if not a.quick else (640, 2, "AB", 3)
    logs = os.path.join(OUT, "logs")
    os.makedirs(logs, exist_ok=True)
    watch = LoadWatch()
    runs = []
    for i, mode in enumerate(order):
        doc = job_spec(f"bench-overhead-{i}", epochs, samples)
        tag = f"{i}-{'standalone' if mode == 'A' else 'coordinator'}"
        log.info("run %d/%d: %s", i + 1, len(order), tag)
        r = run_standalone(doc, logs, tag) if mode == "A" else run_coordinated(doc, logs, tag, 1200)
        r["steady"] = steady(r["points"], skip)
        r["steps"] = len(r.pop("points"))
        log.info("  %s: %.3f steps/s (trainer timing), %.3f steps/s (wall), %d steps", r["mode"],
                 r["steady"]["trainer_steps_per_s"], r["steady"]["wall_steps_per_s"] or 0, r["steps"])
        runs.append(r)
    rate = {m: [r["steady"]["trainer_steps_per_s"] for r in runs if r["mode"] == m] for m in ("standalone", "coordinator")}
    wall = {m: [r["steady"]["wall_steps_per_s"] for r in runs if r["mode"] == m] for m in ("standalone", "coordinator")}
    out = {"order": order, "job": job_spec("bench-overhead", epochs, samples), "runs": runs}
    if rate["standalone"] and rate["coordinator"]:
        out["ratio_trainer_timing"] = round(statistics.fmean(rate["coordinator"]) / statistics.fmean(rate["standalone"]), 4)
        out["ratio_wall"] = round(statistics.fmean(wall["coordinator"]) / statistics.fmean(wall["standalone"]), 4)
        out["goal"] = ">= 0.99"
        log.info("coordinator / standalone: %.4f (trainer timing), %.4f (wall); goal >= 0.99",
                 out["ratio_trainer_timing"], out["ratio_wall"])
    write_result("overhead" + ("-quick" if a.quick else ""), out, watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
