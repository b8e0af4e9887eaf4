"""One supervised trainer process (docs/internals.md "Agent <-> trainer").

The agent binds the control PUSH and report PULL sockets, writes the assignment file, and spawns the
trainer in its own process group, so that ABORT can SIGKILL it and everything it started even while it
is blocked inside a collective. A watcher thread relays the trainer's reports, notices its exit and
sends the final TrainerStatus after the last reports; two more threads copy stdout/stderr into the
agent's log and keep stderr's tail for the status message.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Callable

import zmq
from google.protobuf import json_format

from ..proto import agent_pb2, trainer_pb2
from .devices import Device
from .exit_status import classify_exit
from .logfmt import event

log = logging.getLogger("byol.agent.trainer")
STDERR_TAIL_LINES = 50

Relay = Callable[[agent_pb2.AgentMessage], None]

# Linux: the trainer gets SIGKILL when the agent's spawning thread dies (prctl PR_SET_PDEATHSIG survives
# exec), so a SIGKILLed agent leaves no orphan holding a device; a parent already gone means exit 70.
_GUARD = ("import ctypes, os, signal, sys\n"
          "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))\n"
          "if os.getppid() != int(sys.argv[1]): sys.exit(70)\n"
          "os.execvp(sys.argv[2], sys.argv[2:])\n")


def guarded(command: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-S", "-c", _GUARD, str(os.getpid())] + command


class TrainerProcess:
    def __init__(self, assignment: agent_pb2.Assignment, device: Device, run_dir: str, ipc_prefix: str,
                 command: list[str], env: dict[str, str], relay: Relay,
                 on_exit: Callable[["TrainerProcess"], None]) -> None:
        self.assignment = assignment
        self.device = device
        self.key = (assignment.job_id, int(assignment.generation), int(assignment.rank))
        self.run_dir = run_dir
        self.control_address = f"ipc://{ipc_prefix}-control"
        self.report_address = f"ipc://{ipc_prefix}-report"
        self.command = command
        self.env = env
        self._relay = relay
        self._on_exit = on_exit
        self.step = 0
        self.state = agent_pb2.TRAINER_STATE_UNSPECIFIED
        self.returncode: int | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._aborted = False
        self._killed_after_grace = False
        self._proc: subprocess.Popen | None = None
        self._control_lock = threading.Lock()
        self.done = threading.Event()
        ctx = zmq.Context.instance()
        self._control = ctx.socket(zmq.PUSH)
        self._report = ctx.socket(zmq.PULL)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _fields(self) -> dict:
        return {"job": self.key[0], "generation": self.key[1], "rank": self.key[2], "device": self.device.id}

    def assignment_file(self) -> str:
        return os.path.join(self.run_dir, "assignment.json")

    def start(self) -> None:
        """Bind the sockets, write the assignment file, spawn; raises OSError/zmq.ZMQError on failure."""
        try:
            self._spawn()
        except BaseException:
            self._control.close()
            self._report.close()
            self._unlink_sockets()
            raise
        self.state = agent_pb2.TRAINER_STARTING
        event(log, "trainer_started", pid=self._proc.pid, assignment=self.assignment_file(), **self._fields())
        self._send_status(agent_pb2.TRAINER_STARTING)
        self._pipes = [threading.Thread(target=self._pump, args=(self._proc.stdout, "stdout", False), daemon=True),
                       threading.Thread(target=self._pump, args=(self._proc.stderr, "stderr", True), daemon=True)]
        for t in self._pipes:
            t.start()
        threading.Thread(target=self._watch, name=f"byol-trainer-{self.key[2]}", daemon=True).start()

    def _spawn(self) -> None:
        if shutil.which(self.command[0]) is None:  # the exec guard would only fail later, less clearly
            raise FileNotFoundError(f"trainer command {self.command[0]!r} is not an executable on PATH")
        os.makedirs(self.run_dir, exist_ok=True)
        self._control.setsockopt(zmq.SNDHWM, 100)
        for sock, addr in ((self._control, self.control_address), (self._report, self.report_address)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(addr)
        doc = json_format.MessageToDict(self.assignment, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
        doc["control_address"] = self.control_address
        doc["report_address"] = self.report_address
        path = self.assignment_file()
        # 0600: the file carries this rank's telemetry key (docs/internals.md "Telemetry").
        tmp = path + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(path + ".tmp", path)
        self._proc = subprocess.Popen(guarded(self.command + ["--assignment", path]), env=self.env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True)

    # -- control --------------------------------------------------------------------------------
    def control(self, command_type: int, step: int) -> bool:
        """Relay a command to the trainer without blocking; False when its queue is full or it is gone."""
        raw = trainer_pb2.TrainerControl(type=command_type, step=step).SerializeToString()
        with self._control_lock:
            if self.done.is_set():
                return False
            try:
                self._control.send(raw, zmq.NOBLOCK)
                return True
            except zmq.ZMQError:
                return False

    def terminate(self) -> None:
        """SIGTERM to the trainer itself (not its group: data-loader children must not die first)."""
        self._signal(signal.SIGTERM, group=False)

    def kill(self, *, aborted: bool = False, after_grace: bool = False) -> None:
        """SIGKILL the whole process group: works even while the trainer is stuck in a collective."""
        self._aborted = self._aborted or aborted
        self._killed_after_grace = self._killed_after_grace or after_grace
        self._signal(signal.SIGKILL, group=True)

    def _signal(self, sig: int, group: bool) -> None:
        if self._proc is None:
            return
        try:
            if group:
                os.killpg(self._proc.pid, sig)  # start_new_session made pid the group id
            elif self._proc.poll() is None:
                os.kill(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    # -- threads --------------------------------------------------------------------------------
    def _pump(self, pipe, stream: str, keep_tail: bool) -> None:
        tlog = logging.getLogger("byol.trainer")
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if keep_tail and line.strip():
                self.stderr_tail.append(line)
            event(tlog, f"rank{self.key[2]}", job=self.key[0], generation=self.key[1], stream=stream, line=line)
        pipe.close()

    def _handle_report(self, raw: bytes) -> None:
        report = trainer_pb2.TrainerReport()
        try:
            report.ParseFromString(raw)
        except Exception:
            event(log, "bad_report_dropped", logging.WARNING, bytes=len(raw), **self._fields())
            return
        kind = report.WhichOneof("kind")
        if kind == "progress":
            p = report.progress
            p.job_id, p.generation, p.rank = self.key
            self.step = max(self.step, int(p.step))
            if self.state == agent_pb2.TRAINER_STARTING:
                self.state = agent_pb2.TRAINER_RUNNING
                self._send_status(agent_pb2.TRAINER_RUNNING)
            self._relay(agent_pb2.AgentMessage(progress=p))
        elif kind == "checkpoint":
            c = report.checkpoint
            c.job_id, c.generation = self.key[0], self.key[1]
            self._relay(agent_pb2.AgentMessage(checkpoint=c))
        elif kind == "event":
            e = report.event
            e.job_id, e.generation = self.key[0], self.key[1]
            self._relay(agent_pb2.AgentMessage(event=e))

    def _watch(self) -> None:
        assert self._proc is not None
        poller = zmq.Poller()
        poller.register(self._report, zmq.POLLIN)
        quiet_polls = 0
        while True:
            events = dict(poller.poll(100))
            if self._report in events:
                quiet_polls = 0
                while True:
                    try:
                        self._handle_report(self._report.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
            elif self._proc.poll() is not None:
                quiet_polls += 1
                if quiet_polls >= 3:  # exited and no report left in flight: its last words are in
                    break
        self.returncode = self._proc.wait()
        self._signal(signal.SIGKILL, group=True)  # reap anything it left behind in its group
        for t in self._pipes:
            t.join(2.0)
        last = self.stderr_tail[-1] if self.stderr_tail else ""
        state, message = classify_exit(self.returncode, aborted=self._aborted,
                                       killed_after_grace=self._killed_after_grace, last_error=last)
        self.state = state
        level = logging.INFO if state in (agent_pb2.TRAINER_SUCCEEDED, agent_pb2.TRAINER_PREEMPTED) else logging.WARNING
        event(log, "trainer_exited", level, exit_code=self.returncode, state=agent_pb2.TrainerState.Name(state),
              step=self.step, message=message, **self._fields())
        self._send_status(state, self.returncode, message)
        with self._control_lock:
            self.done.set()
            self._control.close()
        self._report.close()
        self._unlink_sockets()
        self._on_exit(self)

    def _unlink_sockets(self) -> None:
        for addr in (self.control_address, self.report_address):
            try:
                os.unlink(addr[len("ipc://"):])
            except OSError:
                pass

    def _send_status(self, state: int, exit_code: int = 0, message: str = "") -> None:
        self._relay(agent_pb2.AgentMessage(trainer=agent_pb2.TrainerStatus(
            job_id=self.key[0], generation=self.key[1], rank=self.key[2], state=state,
            exit_code=exit_code, message=message[:2000], step=self.step)))
