"""The agent with the real trainer (`python -m byol_worker trainer`) on a tiny synthetic spec: two-phase
rendezvous, statuses, progress, telemetry, and a SIGTERM to the agent that ends in a checkpoint and
PREEMPTED within the grace period."""
import json
import os
import signal
import sys
import time

import pytest
import zmq

sys.path.insert(0, os.path.dirname(__file__))
from conftest import resolved, tiny_doc  # noqa: E402
from test_agent_support import FakeCoordinator, agent_log, start_agent  # noqa: E402

from byol_worker.train.control import schedule_from_plan  # noqa: E402
from byol_worker.proto import agent_pb2 as S, telemetry_pb2  # noqa: E402
from byol_worker.core.schedule_plan import plan  # noqa: E402

GRACE_S = 20


@pytest.fixture
def coordinator():
    c = FakeCoordinator()
    yield c
    c.stop()


def test_real_trainer_runs_then_checkpoints_and_stops_on_agent_sigterm(coordinator, tmp_path):
    doc = resolved(tiny_doc(spec={"data": {"numSamples": 64}, "train": {"epochs": 50},  # K = 200 steps
                                  "preemption": {"gracePeriodSeconds": GRACE_S}}))
    sched = schedule_from_plan(plan(doc, 1, 64))
    ctx = zmq.Context.instance()
    telemetry = ctx.socket(zmq.PULL)
    tport = telemetry.bind_to_random_port("tcp://127.0.0.1")
    ckdir = tmp_path / "ckpt"
    agent = start_agent(coordinator.address, tmp_path, trainer_cmd="",
                        extra_env={"BYOL_LOG_LEVEL": "WARNING"})
    try:
        coordinator.expect("hello")

        def assign(address: str) -> S.Assignment:
            return S.Assignment(job_id="real", generation=1, rank=0, world_size=1, device_id="cpu:0",
                                host_rendezvous=True, rendezvous_address=address, spec_json=json.dumps(doc),
                                schedule=sched, checkpoint_dir=str(ckdir),
                                telemetry_address=f"tcp://127.0.0.1:{tport}")

        coordinator.send(assign=assign(""))
        address = coordinator.expect("rendezvous").address
        coordinator.send(assign=assign(address))
        coordinator.expect("trainer", lambda s: s.state == S.TRAINER_STARTING)
        st = coordinator.expect("trainer", lambda s: s.state != S.TRAINER_STARTING, timeout=90)
        assert st.state == S.TRAINER_RUNNING, f"{st}\n{agent_log(tmp_path)[-3000:]}"
        coordinator.expect("progress", lambda p: p.step >= 2, timeout=30)
        t0 = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(GRACE_S + 5) == 0
        took = time.monotonic() - t0
        ev = coordinator.expect("event", lambda e: "SIGTERM" in e.message)
        assert (ev.job_id, ev.generation) == ("real", 1)
        ck = coordinator.expect("checkpoint")
        final = coordinator.expect("trainer", lambda s: s.state not in (S.TRAINER_STARTING, S.TRAINER_RUNNING))
        assert (final.state, final.exit_code) == (S.TRAINER_PREEMPTED, 75), final.message
        assert ck.ok and ck.step == final.step and 2 <= ck.step < 200
        assert os.path.isdir(ck.path) and os.path.basename(ck.path) == f"step-{ck.step:09d}"
        assert len(ck.sha256) == 64 and ck.bytes > 0
        assert took < GRACE_S, f"stopping took {took:.1f}s"
        steps = []
        while telemetry.poll(100):
            m = telemetry_pb2.Metric()
            m.ParseFromString(telemetry.recv())
            steps.append(m.step)
        assert steps and steps[0] == 0 and steps == sorted(steps)
    finally:
        if agent.poll() is None:
            agent.kill()
        telemetry.close(linger=0)
    print(f"agent SIGTERM -> exit with a checkpoint at step {ck.step}: {took:.2f}s")
    assert "event=agent_stopped exit_code=0" in agent_log(tmp_path)
