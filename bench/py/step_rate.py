"""Steady-state step rate of a job from its per-step metrics, the same way for every run.

A point is one global step aggregated over ranks: `stepTimeS` is the slowest rank's own step time (the
trainer's timing, data wait included) and `tMs` the wall clock when the step's first frame arrived.
"""
from __future__ import annotations

import statistics
import threading

import zmq

from byol_worker.proto import telemetry_pb2


def steady(points: list[dict], skip: int, tail: int = 2) -> dict:
    """Rates over steps [skip, last - tail]: start-up (first steps: allocator, caches) and the final
    step (checkpoint at the end) are left out."""
    pts = sorted((p for p in points if p.get("generation", 1) == points[0].get("generation", 1)),
                 key=lambda p: p["step"])
    if not pts:
        raise ValueError("no metric points: the job sent no telemetry")
    last = pts[-1]["step"]
    win = [p for p in pts if skip <= p["step"] <= last - tail]
    if len(win) < 3:
        raise ValueError(f"only {len(win)} steady steps (of {len(pts)}); run more steps")
    times = [p["stepTimeS"] for p in win]
    span_s = (win[-1]["tMs"] - win[0]["tMs"]) / 1000.0
    return {
        "steps_measured": len(win), "first_step": win[0]["step"], "last_step": win[-1]["step"],
        "missing_steps": (win[-1]["step"] - win[0]["step"] + 1) - len(win),
        "trainer_steps_per_s": round(1.0 / statistics.fmean(times), 4),
        "trainer_step_ms_median": round(1000 * statistics.median(times), 2),
        "wall_steps_per_s": round((win[-1]["step"] - win[0]["step"]) / span_s, 4) if span_s > 0 else None,
    }


class MetricCollector:
    """A ZeroMQ PULL that aggregates Metric frames per step like the coordinator does (slowest rank's
    step time, first arrival time), for runs without a coordinator."""

    def __init__(self) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PULL)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.points: dict[int, dict] = {}
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time
        m = telemetry_pb2.Metric()
        while not self._stop.is_set():
            if not self.sock.poll(100):
                continue
            while True:
                try:
                    raw = self.sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                now_ms = time.time() * 1000.0
                m.ParseFromString(raw)
                self.frames += 1
                p = self.points.setdefault(m.step, {"step": m.step, "generation": m.generation, "tMs": now_ms,
                                                    "stepTimeS": 0.0, "ranks": 0})
                p["stepTimeS"] = max(p["stepTimeS"], m.step_time_s)
                p["ranks"] += 1

    def close(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        self.sock.close(linger=0)
        return sorted(self.points.values(), key=lambda p: p["step"])
