"""Recovery time under the coordinator (docs/architecture.md §8, §10): from a worker's loss to the first step of the
new generation.

    .venv/bin/python bench/py/recovery.py [--repeats 2] [--only agent-sigterm|trainer-sigkill] [--victim-rank 0|1]

Each run: a real `byolctl serve --launcher external`, two real agents (`python -m byol_worker agent`, one
CPU slot each) and a tiny 2-rank job submitted over REST. Once the job is past `--fault-step`:
  agent-sigterm:   SIGTERM to one agent (a preemption notice); minWorkers 1, so the job goes on, on one rank;
  trainer-sigkill: SIGKILL to one trainer process (a crash); minWorkers 2, the same two agents restart it.
Reported per run: the coordinator's own `recoverySeconds` of the new generation (fault detected -> first
progress; REST GET /v1/jobs/{id}), and ours: signal sent -> first metric frame of the new generation at
the coordinator (its `tMs`), plus steps lost.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time

from common import OUT, PYTHON, REPO, LoadWatch, log, need_build, setup_logging, write_result
from serve import Serve


def job_spec(name: str, min_workers: int) -> dict:
    return {
        "apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": name},
        "spec": {
            "preset": "byol-cifar",
            "data": {"format": "synthetic", "numSamples": 800, "numClasses": 4, "imageSize": 16, "loaderWorkers": 0},
            "model": {"backbone": "resnet18-cifar", "width": 0.125, "projector": {"hiddenDim": 32, "outDim": 16},
                      "predictor": {"hiddenDim": 32}},
            "optimizer": {"warmupEpochs": 0.1},
            "train": {"epochs": 2, "globalBatch": 8, "precision": "fp32", "channelsLast": False, "logEverySteps": 20},
            "resources": {"workers": 2, "minWorkers": min_workers, "device": "cpu", "threadsPerWorker": 1},
            "checkpoint": {"everySteps": 20, "keepLast": 2},
            "eval": {"knn": {"enabled": False}},
            "preemption": {"gracePeriodSeconds": 20},
        },
    }


def spawn_agent(grpc: str, agent_id: str, token: str, logs: str) -> subprocess.Popen:
    lf = open(os.path.join(logs, f"recovery-{agent_id}.log"), "w", encoding="utf-8")
    return subprocess.Popen([PYTHON, "-m", "byol_worker", "agent", "--coordinator", grpc, "--agent-id", agent_id,
                             "--devices", "cpu:1", "--host", "127.0.0.1"], cwd=REPO, stdout=lf, stderr=subprocess.STDOUT,
                            env={**os.environ, "BYOL_AGENT_TOKEN": token, "OMP_NUM_THREADS": "1"})


def trainer_pids(agent: subprocess.Popen) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    return [int(f[0]) for f in (line.split(None, 2) for line in out.splitlines())
            if len(f) == 3 and int(f[1]) == agent.pid and " trainer " in f" {f[2]} "]


def one_run(scenario: str, n: int, fault_step: int, logs: str, victim_rank: int = 1) -> dict:
    token = secrets.token_hex(8)
    srv = Serve(os.path.join(logs, f"recovery-{scenario}-{n}-serve.log"), launcher="external", agent_token=token)
    agents = [spawn_agent(srv.grpc, f"bench-{scenario}-{n}-{i}", token, logs) for i in range(2)]
    try:
        job = srv.submit(job_spec(f"bench-recovery-{n}", 1 if scenario == "agent-sigterm" else 2))
        jid = job["id"]
        deadline = time.monotonic() + 180
        while True:
            j = srv.job(jid)
            if j["state"] == "RUNNING" and j["step"] >= fault_step:
                break
            if j["state"] in ("FAILED", "SUCCEEDED", "CANCELLED") or time.monotonic() > deadline:
                raise RuntimeError(f"job {jid} is {j['state']} at step {j['step']} before the fault ({j.get('message')})")
            time.sleep(0.1)
        # The agent holding `victim_rank` (rank 0's agent hosts the generation's rendezvous store).
        holder = j["generations"][-1]["agents"][victim_rank]
        victim = agents[int(holder.rsplit("-", 1)[1])]  # agent ids end in their index
        if scenario == "agent-sigterm":
            fault_ms = time.time() * 1000
            victim.send_signal(signal.SIGTERM)
        else:
            pids = trainer_pids(victim)
            if not pids:
                raise RuntimeError(f"no trainer process under agent {holder} to kill")
            fault_ms = time.time() * 1000
            os.kill(pids[0], signal.SIGKILL)
        step_at_fault = j["step"]
        end = srv.wait_state(jid, ("SUCCEEDED",), 300, poll_s=0.5)
        gens = end["generations"]
        if len(gens) < 2:
            raise RuntimeError(f"job {jid} finished in one generation: the fault was not seen")
        new = gens[1]
        first = [p for p in srv.metrics(jid) if p["generation"] == new["generation"]]
        first_ms = min(p["tMs"] for p in first) if first else None
        r = {"scenario": scenario, "victim_rank": victim_rank, "job": jid, "step_at_fault": step_at_fault,
             "recoverySeconds": new["recoverySeconds"],
             "fault_to_first_metric_s": round((first_ms - fault_ms) / 1000, 3) if first_ms else None,
             "end_reason": gens[0]["endReason"], "steps_lost": gens[0]["stepsLost"],
             "new_world_size": new["worldSize"], "new_start_step": new["startStep"], "generations": len(gens)}
        log.info("%s (rank %d) #%d: recoverySeconds %s, signal -> first metric of generation %d: %s s, %d steps lost (%s)",
                 scenario, victim_rank, n, r["recoverySeconds"], new["generation"], r["fault_to_first_metric_s"], r["steps_lost"],
                 r["end_reason"])
        return r
    finally:
        for a in agents:
            if a.poll() is None:
                a.send_signal(signal.SIGTERM)
        for a in agents:
            try:
                a.wait(30)
            except subprocess.TimeoutExpired:
                a.kill()
                a.wait()
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["agent-sigterm", "trainer-sigkill"], action="append")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--fault-step", type=int, default=25, help="inject the fault once the job is past this step")
    ap.add_argument("--quick", action="store_true", help="one run per scenario")
    ap.add_argument("--victim-rank", type=int, choices=[0, 1], default=1,
                    help="the rank whose agent (or trainer) gets the signal; rank 0's agent hosts the rendezvous store")
    a = ap.parse_args(argv)
    setup_logging()
    need_build()
    logs = os.path.join(OUT, "logs")
    os.makedirs(logs, exist_ok=True)
    watch = LoadWatch()
    runs = []
    for scenario in a.only or ["agent-sigterm", "trainer-sigkill"]:
        for n in range(1 if a.quick else a.repeats):
            runs.append(one_run(scenario, n, a.fault_step, logs, a.victim_rank))
    summary = {}
    for s in {r["scenario"] for r in runs}:
        rs = [r for r in runs if r["scenario"] == s]
        summary[s] = {"recoverySeconds_median": statistics.median(r["recoverySeconds"] for r in rs if r["recoverySeconds"] is not None),
                      "fault_to_first_metric_s_median": statistics.median(r["fault_to_first_metric_s"] for r in rs
                                                                          if r["fault_to_first_metric_s"] is not None)}
    write_result("recovery" + ("-quick" if a.quick else "") + (f"-rank{a.victim_rank}" if a.victim_rank != 1 else ""), {"runs": runs, "summary": summary,
                                                              "job": job_spec("bench-recovery", 2)}, watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
