"""The step-rate arithmetic every overhead number rests on, against hand-computed values, and the
collector with real ZeroMQ frames. Run: .venv/bin/python -m pytest -q bench/py (about 1 s)."""
from __future__ import annotations

import time

import pytest
import zmq

from byol_worker.proto import telemetry_pb2
from step_rate import MetricCollector, steady


def pts(times_s: list[float], dt_ms: float = 500.0, gen: int = 1) -> list[dict]:
    return [{"step": k, "generation": gen, "stepTimeS": t, "tMs": 1000.0 + k * dt_ms} for k, t in enumerate(times_s)]


def test_steady_leaves_out_startup_and_tail():
    # steps 0..9; skip 2, tail 2 -> steps 2..7: step times 0.5 x 5 and 0.25 -> mean 2.75/6
    p = pts([9.0, 9.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 7.0, 7.0])
    r = steady(p, skip=2, tail=2)
    assert (r["first_step"], r["last_step"], r["steps_measured"], r["missing_steps"]) == (2, 7, 6, 0)
    assert r["trainer_steps_per_s"] == pytest.approx(6 / 2.75, abs=1e-4)
    assert r["trainer_step_ms_median"] == 500.0
    # 5 step intervals over 5 x 500 ms of arrival times -> 2 steps/s
    assert r["wall_steps_per_s"] == pytest.approx(2.0)


def test_steady_counts_missing_steps_and_ignores_other_generations():
    p = pts([0.5] * 10)
    del p[4]
    p += pts([0.1] * 3, gen=2)  # a later generation's points must not mix in
    r = steady(p, skip=1, tail=1)
    assert r["missing_steps"] == 1 and r["steps_measured"] == 7


def test_steady_refuses_too_few_steps():
    with pytest.raises(ValueError, match="run more steps"):
        steady(pts([0.5] * 4), skip=2, tail=1)
    with pytest.raises(ValueError, match="no metric points"):
        steady([], skip=0)


def test_collector_aggregates_the_slowest_rank_per_step():
    col = MetricCollector()
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(col.address)
    for step, rank, t in [(0, 0, 0.2), (0, 1, 0.3), (1, 1, 0.25), (1, 0, 0.4)]:
        push.send(telemetry_pb2.Metric(job_id="j", generation=1, rank=rank, world_size=2, step=step,
                                       step_time_s=t).SerializeToString())
    deadline = time.monotonic() + 5
    while col.frames < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    push.close(linger=0)
    got = col.close()
    assert [(p["step"], p["ranks"], p["stepTimeS"]) for p in got] == [(0, 2, 0.3), (1, 2, 0.4)]
