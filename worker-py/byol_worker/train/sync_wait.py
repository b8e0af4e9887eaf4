"""How long this rank waits for the other ranks inside a step (telemetry `sync_wait_ms`).

Ranks train in lockstep: a fast rank waits in the step's collectives for the slowest one, so every rank reports
about the same step time and a compute straggler hides. The coordinator's rank-skew check therefore compares
each rank's OWN time, step time minus this wait.

Two kinds of in-step collectives are measured:
- DDP's gradient all-reduce, through a comm hook around DDP's default all-reduce hook: from the hand-over of
  the step's last bucket (this rank's gradients are ready) to the end of the last bucket's all-reduce (DDP has
  the reduced gradients);
- the blocking collectives of the synced batch norm (distributed.py), from their start to their end.
CPU/gloo uses time.perf_counter. CUDA records events on the current stream and reads them one step later
(`StepWait.ms()`, read when the step's metrics are sent, after its loss), so the step never syncs the device.
One rank, no DDP, or accumulation micro-steps under no_sync: no collective, wait 0.

One trainer process is one rank, so the recorder is per process (`RECORDER`).
"""
from __future__ import annotations

import contextlib
import time

import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks


class _Mark:
    """A point in time: perf_counter on CPU, a CUDA event recorded on the current stream otherwise."""

    __slots__ = ("t", "event")

    def __init__(self, cuda: bool) -> None:
        self.t = time.perf_counter()
        self.event = None
        if cuda:
            self.event = torch.cuda.Event(enable_timing=True)
            self.event.record()


def _elapsed_ms(start: _Mark, end: _Mark) -> float:
    if start.event is None or end.event is None:
        return max(0.0, (end.t - start.t) * 1000.0)
    end.event.synchronize()  # read a step later: long done, this does not stall the device
    return max(0.0, start.event.elapsed_time(end.event))


class StepWait:
    """One step's waits; `ms()` sums them (on CUDA, call it once the step's results have been read)."""

    def __init__(self, spans: list[tuple[_Mark, _Mark]]) -> None:
        self._spans = spans
        self._ms: float | None = None

    def ms(self) -> float:
        if self._ms is None:
            self._ms = sum(_elapsed_ms(a, b) for a, b in self._spans)
            self._spans = []
        return self._ms


class SyncWaitRecorder:
    """Collects the waits of the current step; `end_step()` hands them over and starts the next step."""

    def __init__(self) -> None:
        self.cuda = False
        self._spans: list[tuple[_Mark, _Mark]] = []
        self._last_handover: _Mark | None = None
        self._last_done: _Mark | None = None

    def comm_hook(self, process_group, bucket):
        """DDP comm hook: DDP's default all-reduce, with the hand-over and the completion marked."""
        self._last_handover = _Mark(self.cuda)
        fut = default_hooks.allreduce_hook(process_group, bucket)

        def done(f):
            self._last_done = _Mark(self.cuda)  # on CUDA: the callback's stream waits for the all-reduce
            return f.value()

        return fut.then(done)

    @contextlib.contextmanager
    def collective(self):
        """Around a blocking in-step collective: all of its time is waiting for the peers (and the transfer)."""
        start = _Mark(self.cuda)
        try:
            yield
        finally:
            self._spans.append((start, _Mark(self.cuda)))

    def end_step(self) -> StepWait:
        spans, self._spans = self._spans, []
        if self._last_handover is not None and self._last_done is not None:
            spans.append((self._last_handover, self._last_done))
        self._last_handover = self._last_done = None
        return StepWait(spans)


RECORDER = SyncWaitRecorder()


def attach(ddp_module, device: torch.device) -> SyncWaitRecorder:
    """Registers the recording hook on a DDP module (call once, before the first step)."""
    RECORDER.cuda = device.type == "cuda"
    ddp_module.register_comm_hook(None, RECORDER.comm_hook)
    return RECORDER
