"""Trainer side of the local channels with its agent (docs/internals.md "Agent <-> trainer").

The assignment file: the agent's Assignment as proto JSON plus `control_address` and `report_address`;
`read_assignment` turns it into a plain `Assignment` once, so nothing past it reads protobuf.

Control: the agent PUSH-binds `control_address`; the trainer PULL-connects and polls without blocking at
each step boundary. Reports: the trainer PUSH-connects to `report_address` (the agent PULL-binds) and sends
`TrainerReport{progress|checkpoint|event}`. Empty addresses make both sides no-ops (standalone tests).
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from dataclasses import dataclass

from google.protobuf import json_format

from ..optional import zmq
from ..proto import agent_pb2, trainer_pb2

log = logging.getLogger("byol.control")


class AssignmentError(ValueError):
    """The assignment file is unreadable or inconsistent (the trainer exits 2)."""


@dataclass(frozen=True)
class Schedule:
    """The coordinator's ScheduleState as plain numbers (docs/internals.md "Schedule numbers")."""
    total_steps: int        # K
    warmup_steps: int
    peak_lr: float
    tau_base: float
    tau_schedule: str       # "cosine" (also when empty) | "constant"
    steps_per_epoch: int
    global_batch: int       # B
    micro_batch: int        # b, per rank
    accumulation: int       # a, with W*b*a = B
    as_recorded: dict       # its proto JSON form, as checkpoints' state.json keep it


@dataclass(frozen=True)
class Assignment:
    """The agent's Assignment as plain values, converted from the proto once (`from_proto`, the only place the
    trainer reads it), plus the local channel addresses."""
    job_id: str
    generation: int
    rank: int
    world_size: int
    device_id: str
    rendezvous_address: str
    spec: dict              # the resolved job document
    spec_hash: str          # the coordinator's sha256 of it (checkpoints record it); "" for a standalone YAML
    schedule: Schedule
    resume_checkpoint: str  # empty = fresh start
    checkpoint_dir: str
    telemetry_address: str
    telemetry_key: bytes
    stop_at_step: int       # 0 = run to total_steps
    control_address: str = ""
    report_address: str = ""


def from_proto(msg: agent_pb2.Assignment, control_address: str = "", report_address: str = "") -> Assignment:
    try:
        spec = json.loads(msg.spec_json)
    except ValueError as e:
        raise AssignmentError(f"assignment spec_json: not valid JSON ({e})") from e
    s = msg.schedule
    schedule = Schedule(total_steps=int(s.total_steps), warmup_steps=int(s.warmup_steps), peak_lr=float(s.peak_lr),
                        tau_base=float(s.tau_base), tau_schedule=s.tau_schedule,
                        steps_per_epoch=int(s.steps_per_epoch), global_batch=int(s.global_batch),
                        micro_batch=int(s.micro_batch), accumulation=int(s.accumulation),
                        as_recorded=json_format.MessageToDict(s, preserving_proto_field_name=True))
    return Assignment(job_id=msg.job_id, generation=int(msg.generation), rank=int(msg.rank),
                      world_size=int(msg.world_size), device_id=msg.device_id,
                      rendezvous_address=msg.rendezvous_address, spec=spec, spec_hash=msg.spec_hash,
                      schedule=schedule,
                      resume_checkpoint=msg.resume_checkpoint, checkpoint_dir=msg.checkpoint_dir,
                      telemetry_address=msg.telemetry_address, telemetry_key=bytes(msg.telemetry_key),
                      stop_at_step=int(msg.stop_at_step), control_address=control_address,
                      report_address=report_address)


def read_assignment(path: str) -> Assignment:
    """Parse the JSON file the agent wrote (proto JSON, uint64 as strings or numbers both accepted)."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise AssignmentError(f"assignment file {path}: cannot read ({e})") from e
    if not isinstance(doc, dict):
        raise AssignmentError(f"assignment file {path}: must be a JSON object")
    control = str(doc.pop("control_address", "") or "")
    report = str(doc.pop("report_address", "") or "")
    msg = agent_pb2.Assignment()
    try:
        json_format.ParseDict(doc, msg)
    except json_format.ParseError as e:
        raise AssignmentError(f"assignment file {path}: {e}") from e
    if msg.telemetry_key and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("assignment file %s is readable by other users (mode %o) and holds this rank's telemetry key, "
                    "which lets them forge its metrics: write it with mode 0600 (the agent does)",
                    path, stat.S_IMODE(mode))
    return from_proto(msg, control, report)


def assignment_file(msg: agent_pb2.Assignment, control_address: str = "", report_address: str = "") -> dict:
    """The JSON document of an assignment file (read_assignment reads it back)."""
    d = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    d["control_address"], d["report_address"] = control_address, report_address
    return d


def schedule_from_plan(p: dict) -> agent_pb2.ScheduleState:
    """schedule_plan.plan()'s camelCase numbers -> the proto ScheduleState the coordinator would send."""
    return agent_pb2.ScheduleState(
        total_steps=p["totalSteps"], warmup_steps=p["warmupSteps"], peak_lr=p["peakLr"], tau_base=p["tauBase"],
        tau_schedule=p["tauSchedule"],
        steps_per_epoch=p["stepsPerEpoch"], global_batch=p["globalBatch"], micro_batch=p["microBatch"],
        accumulation=p["accumulation"])


@dataclass
class ControlState:
    """What the agent asked for so far; merged into the stop agreement at every step boundary."""
    checkpoint_now: bool = False
    stop_now: bool = False  # STOP_AT_STEP with step 0: stop at the next step boundary
    stop_at_step: int = 0   # 0 = none
    abort: bool = False


class ControlChannel:
    """Non-blocking reader of TrainerControl messages."""

    def __init__(self, address: str) -> None:
        self.state = ControlState()
        self._sock = None
        if address:
            self._sock = zmq.Context.instance().socket(zmq.PULL)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.connect(address)

    def poll(self) -> ControlState:
        """Drain every pending message (never waits) and return the merged state."""
        while self._sock is not None:
            try:
                raw = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg = trainer_pb2.TrainerControl()
            try:
                msg.ParseFromString(raw)
            except Exception:  # a bad frame must not stop training
                log.warning("ignored an undecodable control frame (%d bytes)", len(raw))
                continue
            if msg.type == agent_pb2.COMMAND_CHECKPOINT_NOW:
                self.state.checkpoint_now = True
            elif msg.type == agent_pb2.COMMAND_STOP_AT_STEP:
                if msg.step == 0:
                    self.state.stop_now = True
                else:  # the earliest requested stop wins
                    cur = self.state.stop_at_step
                    self.state.stop_at_step = int(msg.step) if cur == 0 else min(cur, int(msg.step))
            elif msg.type == agent_pb2.COMMAND_ABORT:
                self.state.abort = True
            log.info("control: %s step=%d", agent_pb2.CommandType.Name(msg.type), msg.step)
        return self.state

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Reporter:
    """Sends progress, checkpoint and event reports to the agent; progress is throttled to 1/s."""

    def __init__(self, address: str, *, job_id: str, generation: int, rank: int,
                 min_interval_s: float = 1.0) -> None:
        self.job_id, self.generation, self.rank = job_id, generation, rank
        self.min_interval_s = min_interval_s
        self._last_progress = 0.0
        self._sock = None
        if address:
            self._sock = zmq.Context.instance().socket(zmq.PUSH)
            self._sock.setsockopt(zmq.SNDHWM, 1000)
            self._sock.setsockopt(zmq.LINGER, 1000)  # let the last reports out before exit
            self._sock.connect(address)

    def _send(self, report: trainer_pb2.TrainerReport) -> None:
        if self._sock is None:
            return
        try:
            self._sock.send(report.SerializeToString(), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("report queue to the agent is full; a report was dropped")

    def progress(self, step: int, epoch: float, force: bool = False, results: dict | None = None) -> None:
        """Throttled progress; `results` (e.g. knn_top1 of the finished run) always goes out."""
        now = time.monotonic()
        if not force and not results and now - self._last_progress < self.min_interval_s:
            return
        self._last_progress = now
        self._send(trainer_pb2.TrainerReport(progress=agent_pb2.Progress(
            job_id=self.job_id, generation=self.generation, rank=self.rank, step=step, epoch=epoch,
            results=results or {})))

    def checkpoint(self, step: int, ok: bool, path: str = "", nbytes: int = 0, sha256: str = "",
                   error: str = "") -> None:
        self._send(trainer_pb2.TrainerReport(checkpoint=agent_pb2.CheckpointReport(
            job_id=self.job_id, generation=self.generation, step=step, ok=ok, path=path, bytes=nbytes,
            sha256=sha256, error=error)))

    def event(self, level: str, message: str) -> None:
        self._send(trainer_pb2.TrainerReport(event=agent_pb2.AgentEvent(
            job_id=self.job_id, generation=self.generation, level=level, message=message)))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
