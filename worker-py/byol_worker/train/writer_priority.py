"""CPU priority of the checkpoint writer process (async_save.py).

Background saves run at SCHED_IDLE so that they never take a core from training. But whenever the training
loop waits for the writer (the final save, a preemption save that must finish inside the grace period, a
save that waits for the previous one), an idle-priority writer on a busy host can starve for minutes; then
it is raised to SCHED_OTHER for the wait and lowered again after.

Linux lets a process lower another of its user's processes, but moving one *out of* SCHED_IDLE needs
CAP_SYS_NICE or an RLIMIT_NICE of 20 (`ulimit -e`): root usually has it, a user usually has not (measured
here: root switches both ways; uid 65534 with RLIMIT_NICE 0 gets EPERM on the way back). So the parent
probes once on a throwaway child. Without that right the writer runs at nice 10 instead, all the time: a
small CPU share while training runs, and no starvation when the loop waits.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from typing import Iterator

log = logging.getLogger("byol.checkpoint")

NICE_FALLBACK = 10
_can_switch: bool | None = None


def can_switch() -> bool:
    """Whether this process may move its own children out of SCHED_IDLE and back (probed once)."""
    global _can_switch
    if _can_switch is None:
        _can_switch = _probe()
    return _can_switch


def _probe() -> bool:
    if not (hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE")):
        return False
    try:
        child = subprocess.Popen([sys.executable, "-S", "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    except OSError:
        return False
    try:
        os.sched_setscheduler(child.pid, os.SCHED_IDLE, os.sched_param(0))
        os.sched_setscheduler(child.pid, os.SCHED_OTHER, os.sched_param(0))
        return True
    except OSError:
        return False
    finally:
        child.stdin.close()
        child.wait()


def _set_policy(pid: int, policy: int) -> None:
    """Every thread of `pid` (Linux policies are per thread)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setscheduler(tid, policy, os.sched_param(0))


def lower_self(mode: str) -> None:
    """In the writer, once torch is imported: nice 10 in "nice" mode; in "switch" mode the parent sets it."""
    if mode == "nice":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, NICE_FALLBACK)


class WriterPriority:
    """The trainer's handle on its writer's priority: idle for background saves, normal while it waits."""

    def __init__(self) -> None:
        self.mode = "switch" if can_switch() else "nice"
        self._pid = 0
        self._waiting = 0
        self._lock = threading.Lock()
        if self.mode == "nice":
            log.info("checkpoint writer runs at nice %d: this process may not raise a SCHED_IDLE process back to "
                     "normal priority (needs CAP_SYS_NICE or RLIMIT_NICE 20, e.g. `ulimit -e 20` set by root), so "
                     "idle priority could starve the final or preemption save on a busy host", NICE_FALLBACK)

    def attach(self, pid: int) -> None:
        self._pid = pid

    def background(self) -> None:
        """Before a save request: idle priority, unless the loop is waiting right now."""
        with self._lock:
            if self.mode == "switch" and self._pid and self._waiting == 0:
                _set_policy(self._pid, os.SCHED_IDLE)

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """While the training loop waits for the writer: normal priority."""
        with self._lock:
            self._waiting += 1
            if self.mode == "switch" and self._pid:
                _set_policy(self._pid, os.SCHED_OTHER)
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1
                if self.mode == "switch" and self._pid and self._waiting == 0:
                    _set_policy(self._pid, os.SCHED_IDLE)
