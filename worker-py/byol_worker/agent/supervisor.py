"""The agent's trainers: one process per assigned device, started, commanded, stopped, listed.

`BYOL_TRAINER_CMD` (a test/debug hook) replaces `python -m byol_worker trainer`; it is split like a shell
command and gets `--assignment FILE` appended.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import shlex
import sys
import tempfile
import threading
import time
from typing import Callable

from ..proto import agent_pb2
from .devices import Device
from .logfmt import event
from .trainer_process import Relay, TrainerProcess

log = logging.getLogger("byol.agent.supervisor")
TRAINER_CMD_ENV = "BYOL_TRAINER_CMD"
_MAX_IPC_PATH = 90  # unix socket paths are limited to ~107 bytes; leave room for the suffixes


class AssignmentError(ValueError):
    """An assignment this agent cannot run (unknown or busy device)."""


def trainer_command() -> list[str]:
    override = os.environ.get(TRAINER_CMD_ENV, "").strip()
    return shlex.split(override) if override else [sys.executable, "-m", "byol_worker", "trainer"]


def spec_section(spec_json: str) -> dict:
    """The `spec` object of a resolved job document (or the document itself if it is already the spec)."""
    try:
        doc = json.loads(spec_json) if spec_json else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(doc, dict):
        return {}
    inner = doc.get("spec")
    return inner if isinstance(inner, dict) else doc


def _field(spec_json: str, group: str, name: str) -> object:
    section = spec_section(spec_json).get(group)
    return section.get(name) if isinstance(section, dict) else None


def grace_period_s(spec_json: str, default: float = 30.0) -> float:
    v = _field(spec_json, "preemption", "gracePeriodSeconds")
    return float(v) if isinstance(v, (int, float)) and v > 0 else default


def cpu_threads(spec_json: str, cpu_slots: int) -> int:
    """OMP threads for a CPU trainer: resources.threadsPerWorker, or (0/absent) cores / CPU slots, >= 1."""
    v = _field(spec_json, "resources", "threadsPerWorker")
    if isinstance(v, int) and v > 0:
        return v
    return max(1, (os.cpu_count() or 1) // max(1, cpu_slots))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64] or "job"


class Supervisor:
    def __init__(self, devices: list[Device], work_dir: str, relay: Relay,
                 on_trainer_exit: Callable[[TrainerProcess], None] | None = None) -> None:
        self.devices = {d.id: d for d in devices}
        self.work_dir = work_dir
        self._relay = relay
        self._on_trainer_exit = on_trainer_exit
        self._trainers: dict[tuple[str, int, int], TrainerProcess] = {}
        self._lock = threading.Lock()
        self._serial = 0
        ipc_root = os.path.join(os.path.abspath(work_dir), "ipc")
        self._own_ipc_root = len(ipc_root) > _MAX_IPC_PATH - 20
        if self._own_ipc_root:
            ipc_root = tempfile.mkdtemp(prefix="byol-ipc-")  # 0700
        os.makedirs(ipc_root, mode=0o700, exist_ok=True)
        self.ipc_root = ipc_root

    def close(self) -> None:
        """The agent is leaving: remove the temporary socket folder made when work_dir's path was too long."""
        if self._own_ipc_root:
            shutil.rmtree(self.ipc_root, ignore_errors=True)

    def start(self, a: agent_pb2.Assignment) -> TrainerProcess | None:
        """Spawn the trainer of an assignment that has a rendezvous address. A repeat of a running
        assignment is ignored (returns None). Raises AssignmentError or OSError."""
        key = (a.job_id, int(a.generation), int(a.rank))
        device = self.devices.get(a.device_id)
        if device is None:
            raise AssignmentError(f"device {a.device_id!r} is not on this agent (it has {sorted(self.devices)})")
        with self._lock:
            if key in self._trainers:
                return None
            busy = next((t for t in self._trainers.values() if t.device.id == device.id), None)
            if busy is not None:
                raise AssignmentError(f"device {device.id} is busy with job {busy.key[0]} generation "
                                      f"{busy.key[1]} rank {busy.key[2]}")
            self._serial += 1
            serial = self._serial
        env = dict(os.environ)
        env["BYOL_DEVICE"] = device.env_value
        # trainers that may share this host's cores (the trainer's set_threads divides by it)
        local = sum(1 for d in self.devices.values() if d.kind == device.kind)
        env["BYOL_LOCAL_WORLD_SIZE"] = str(local)
        if device.kind == "cpu":
            env["OMP_NUM_THREADS"] = str(cpu_threads(a.spec_json, local))
        run_dir = os.path.join(self.work_dir, _safe(a.job_id), f"gen{a.generation}-rank{a.rank}")
        ipc_prefix = os.path.join(self.ipc_root, f"t{os.getpid()}-{serial}")
        proc = TrainerProcess(a, device, run_dir, ipc_prefix, trainer_command(), env, self._relay, self._exited)
        with self._lock:
            self._trainers[key] = proc
        try:
            proc.start()
        except BaseException:
            with self._lock:
                self._trainers.pop(key, None)
            raise
        return proc

    def _exited(self, proc: TrainerProcess) -> None:
        with self._lock:
            if self._trainers.get(proc.key) is proc:
                del self._trainers[proc.key]
        if self._on_trainer_exit is not None:
            self._on_trainer_exit(proc)

    def find(self, job_id: str, generation: int | None = None) -> list[TrainerProcess]:
        with self._lock:
            return [t for t in self._trainers.values()
                    if t.key[0] == job_id and (generation is None or t.key[1] == generation)]

    def all(self) -> list[TrainerProcess]:
        with self._lock:
            return list(self._trainers.values())

    def running(self) -> list[agent_pb2.RunningTrainer]:
        """For Hello: what a restarted coordinator must re-attach."""
        return [agent_pb2.RunningTrainer(job_id=t.key[0], generation=t.key[1], rank=t.key[2],
                                         device_id=t.device.id, step=t.step) for t in self.all()]

    def kill(self, trainers: list[TrainerProcess], *, aborted: bool = False, after_grace: bool = False) -> None:
        for t in trainers:
            event(log, "trainer_kill", logging.WARNING, job=t.key[0], generation=t.key[1], rank=t.key[2],
                  reason="abort" if aborted else "grace period over" if after_grace else "fenced")
            t.kill(aborted=aborted, after_grace=after_grace)

    def wait(self, trainers: list[TrainerProcess], deadline: float) -> bool:
        """Wait until the trainers' final statuses are out or the monotonic deadline; True if all are."""
        for t in trainers:
            if not t.done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True
