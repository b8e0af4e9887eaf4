"""Shared helpers of the benchmarks: paths, machine facts, JSON results, load checks.

Every result file in bench/out/ carries the machine it ran on, the exact command, the load average
before and after, and the CPU other processes used while it ran, so a noisy number can be told apart.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "bench", "out")
PYTHON = sys.executable
CLI = os.path.join(REPO, "dist", "orchestrator", "src", "cli", "main.js")

log = logging.getLogger("bench")


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("BYOL_BENCH_LOG", "INFO"), stream=sys.stderr,
                        format="%(asctime)s bench %(levelname)s %(message)s", datefmt="%H:%M:%S")


def machine() -> dict:
    """CPU model, cores, the flags that decide the bf16 path, and versions."""
    info: dict = {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu_model"] = fields.get("Model name", "").strip()
        info["vendor"] = fields.get("Vendor ID", "").strip()
        flags = set(fields.get("Flags", "").split())
        info["flags"] = sorted(flags & {"amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512f", "avx2",
                                        "avx_vnni", "avx512_vnni"})
    except (OSError, subprocess.CalledProcessError) as e:
        info["cpu_model"] = f"unknown (lscpu failed: {e})"
    try:
        info["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        info["node"] = "not found"
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = "not installed"
    return info


def cpu_seconds_total() -> tuple[float, float]:
    """(busy, wall) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    return (sum(parts) - idle) / tick, sum(parts) / tick


class LoadWatch:
    """Load average and machine-wide busy cores over a run (our own processes included)."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        self.busy0, self.total0 = cpu_seconds_total()
        self.t0 = time.monotonic()
        if self.load_start > 1.0:
            log.warning("load average %.2f > 1 before measuring: other work shares the CPU, numbers will be "
                        "noisy (wait for an idle machine and rerun)", self.load_start)

    def done(self) -> dict:
        busy, _ = cpu_seconds_total()
        wall = time.monotonic() - self.t0
        return {"load_start": round(self.load_start, 2), "load_end": round(os.getloadavg()[0], 2),
                "busy_cores_avg": round((busy - self.busy0) / max(wall, 1e-9), 2), "wall_s": round(wall, 1)}


def write_result(name: str, result: dict, watch: LoadWatch | None = None) -> str:
    """bench/out/<name>.json with the command, machine and load; returns the path."""
    os.makedirs(OUT, exist_ok=True)
    doc = {"benchmark": name, "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": " ".join(shlex.quote(a) for a in [os.path.relpath(PYTHON, REPO)] + sys.argv),
           "machine": machine(), **({"load": watch.done()} if watch else {}), **result}
    path = os.path.join(OUT, f"{name}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    log.info("wrote %s", os.path.relpath(path, REPO))
    return path


def need_build() -> None:
    """The coordinator benchmarks run the built CLI; say how to get it when it is missing."""
    if not os.path.exists(CLI):
        raise SystemExit(f"error: {os.path.relpath(CLI, REPO)} not found: build it first "
                         f"(`bash scripts/setup.sh` or `npx tsc -p .`)")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (its own threads, not its children); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class CpuSampler:
    """Last CPU time seen of a process and of its descendants whose command line has none of `skip`
    (e.g. the coordinator and its agents, not the trainers); call sample() now and then while they run."""

    def __init__(self, root_pid: int, skip: tuple[str, ...] = (" trainer ",)) -> None:
        self.root, self.skip = root_pid, skip
        self.seen: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
        children: dict[int, list[tuple[int, str]]] = {}
        for line in out.splitlines():
            f = line.split(None, 2)
            if len(f) == 3:
                children.setdefault(int(f[1]), []).append((int(f[0]), f[2]))
        todo = [(self.root, "root")]
        while todo:
            pid, args = todo.pop()
            if any(s in f" {args} " for s in self.skip):
                continue
            cpu = process_cpu_s(pid)
            if cpu is not None:
                self.seen[pid] = (args[:80], cpu)
            todo += children.get(pid, [])

    def total_s(self) -> float:
        return round(sum(c for _, c in self.seen.values()), 2)
