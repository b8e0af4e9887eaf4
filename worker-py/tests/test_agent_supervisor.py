"""Supervising real trainer processes (a stand-in script through BYOL_TRAINER_CMD): statuses and exit
codes, commands relayed over zmq, ABORT of a stuck trainer and its children, SIGTERM within the grace."""
import glob
import os
import signal
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_support import (FakeCoordinator, agent_log, assignment, pid_alive, start_agent,  # noqa: E402
                                stop_agent)

from byol_worker.proto import agent_pb2  # noqa: E402

S = agent_pb2


@pytest.fixture
def coordinator():
    c = FakeCoordinator()
    yield c
    c.stop()


def _statuses(coordinator, job, n_terminal, timeout=15):
    """Collect this job's TrainerStatus messages per rank until n_terminal ranks have a final state."""
    final = {S.TRAINER_SUCCEEDED, S.TRAINER_PREEMPTED, S.TRAINER_FAILED, S.TRAINER_ABORTED}
    seen: dict[int, list] = {}
    while sum(1 for v in seen.values() if v[-1].state in final) < n_terminal:
        st = coordinator.expect("trainer", lambda s: s.job_id == job, timeout=timeout)
        seen.setdefault(st.rank, []).append(st)
    return seen


def test_exit_codes_become_statuses_with_env_and_stderr(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, devices="cpu:2")
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(job="ok", rank=0, device="cpu:0", threads=3, steps=2))
        coordinator.send(assign=assignment(job="bad", rank=0, device="cpu:1", steps=1, then="exit:2",
                                           stderr="spec.data.path: folder data/x does not exist"))
        ok = _statuses(coordinator, "ok", 1)[0]
        assert [s.state for s in ok] == [S.TRAINER_STARTING, S.TRAINER_RUNNING, S.TRAINER_SUCCEEDED]
        assert ok[-1].exit_code == 0 and ok[-1].step == 2
        progress = [m.progress for _, m in coordinator.seen if m.WhichOneof("kind") == "progress"
                    and m.progress.job_id == "ok"]
        assert [(p.step, p.rank, p.generation) for p in progress] == [(1, 0, 1), (2, 0, 1)]
        env = [m.event.message for _, m in coordinator.seen if m.WhichOneof("kind") == "event"
               and m.event.job_id == "ok"]
        assert "env BYOL_DEVICE=cpu OMP_NUM_THREADS=3 rendezvous=127.0.0.1:1" in env
        bad = _statuses(coordinator, "bad", 1)[0]
        assert bad[-1].state == S.TRAINER_FAILED and bad[-1].exit_code == 2
        assert bad[-1].message == "spec.data.path: folder data/x does not exist"
        # the device is free again: a busy-device refusal would say so
        coordinator.send(assign=assignment(job="crash", gen=1, device="cpu:1", then="exit:1", stderr="boom"))
        crash = _statuses(coordinator, "crash", 1)[0]
        assert crash[-1].state == S.TRAINER_FAILED and crash[-1].exit_code == 1 and crash[-1].message == "boom"
        assert os.path.exists(tmp_path / "work" / "ok" / "gen1-rank0" / "assignment.json")
    finally:
        assert stop_agent(agent) == 0
    assert "event=rank0 job=bad generation=1 stream=stderr" in agent_log(tmp_path)


def test_a_killed_trainer_names_the_signal_not_its_last_info_line_and_its_key_file_is_0600(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, devices="cpu:1")
    try:
        coordinator.expect("hello")
        a = assignment(job="oom", steps=2, then="kill:9", stderr="20:01:02 INFO byol.trainer [rank 0] checkpoint step 2 saved")
        a.telemetry_key = bytes(range(32))
        coordinator.send(assign=a)
        st = _statuses(coordinator, "oom", 1)[0][-1]
        assert (st.state, st.exit_code) == (S.TRAINER_FAILED, -signal.SIGKILL)
        assert st.message.startswith("killed by SIGKILL (signal 9)") and "OOM" in st.message
        assert "checkpoint step 2 saved" not in st.message
        path = tmp_path / "work" / "oom" / "gen1-rank0" / "assignment.json"
        assert os.stat(path).st_mode & 0o777 == 0o600  # it holds the rank's telemetry key
        from byol_worker.train.control import read_assignment
        assert read_assignment(str(path)).telemetry_key == bytes(range(32))
    finally:
        assert stop_agent(agent) == 0


def test_commands_are_relayed_and_other_generations_dropped(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, devices="cpu:2")
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(gen=5, steps=1, then="wait"))
        coordinator.expect("progress", lambda p: p.step == 1)
        coordinator.send(assign=assignment(gen=5, device="cpu:1"))  # same rank again: ignored, not a 2nd trainer
        coordinator.send(command=S.Command(job_id="job-a", generation=4, type=S.COMMAND_CHECKPOINT_NOW))
        coordinator.send(command=S.Command(job_id="job-a", generation=6, type=S.COMMAND_CHECKPOINT_NOW, step=1))
        coordinator.send(command=S.Command(job_id="job-a", generation=5, type=S.COMMAND_CHECKPOINT_NOW))
        ev = coordinator.expect("event", lambda e: e.message.startswith("control"))
        assert ev.message == "control COMMAND_CHECKPOINT_NOW step=0" and ev.generation == 5
        coordinator.send(command=S.Command(job_id="job-a", generation=5, type=S.COMMAND_STOP_AT_STEP, step=7))
        assert coordinator.expect("event", lambda e: e.message.startswith("control")).message == \
            "control COMMAND_STOP_AT_STEP step=7"
        ck = coordinator.expect("checkpoint")
        assert (ck.job_id, ck.generation, ck.ok, ck.path) == ("job-a", 5, True, "ckpt/step-000000001")
        st = coordinator.expect("trainer", lambda s: s.state not in (S.TRAINER_STARTING, S.TRAINER_RUNNING))
        assert (st.state, st.exit_code, st.generation) == (S.TRAINER_PREEMPTED, 75, 5)
        starts = [m for _, m in coordinator.seen if m.WhichOneof("kind") == "trainer"
                  and m.trainer.state == S.TRAINER_STARTING]
        assert len(starts) == 1
    finally:
        assert stop_agent(agent) == 0
    log = agent_log(tmp_path)
    assert log.count("event=stale_command_dropped") == 1  # generation 4 < 5, the newest seen
    assert log.count("event=command_dropped") == 1  # generation 6: no trainer of it here


def test_abort_kills_a_stuck_trainer_and_its_children(coordinator, tmp_path):
    pidfile = str(tmp_path / "child.pid")
    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(then="hang", on_sigterm="ignore", child_pidfile=pidfile))
        coordinator.expect("event", lambda e: e.message == "hanging")
        child = int(open(pidfile).read())
        assert pid_alive(child)
        t0 = time.monotonic()
        coordinator.send(command=S.Command(job_id="job-a", generation=1, type=S.COMMAND_ABORT))
        st = coordinator.expect("trainer", lambda s: s.state == S.TRAINER_ABORTED, timeout=5)
        assert time.monotonic() - t0 < 3.0
        assert st.exit_code == -signal.SIGKILL
        deadline = time.monotonic() + 3
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), "the trainer's child survived the abort"
        # the agent still answers: heartbeats keep coming after the abort
        now_ms = time.time() * 1000
        coordinator.expect("heartbeat", lambda h: h.sent_unix_ms > now_ms)
    finally:
        assert stop_agent(agent) == 0


def test_sigterm_forwards_and_exits_within_grace(coordinator, tmp_path):
    grace = 3
    agent = start_agent(coordinator.address, tmp_path, devices="cpu:2")
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(job="polite", device="cpu:0", grace_s=grace, steps=2, then="wait"))
        coordinator.send(assign=assignment(job="stubborn", device="cpu:1", grace_s=grace, steps=2, then="wait",
                                           on_sigterm="ignore"))
        for job in ("polite", "stubborn"):
            coordinator.expect("progress", lambda p, job=job: p.job_id == job and p.step == 2)
        t0 = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(grace + 2) == 0
        took = time.monotonic() - t0
        assert took <= grace + 0.5, f"agent took {took:.2f}s, grace is {grace}s"
        events = {coordinator.expect("event", lambda e: "SIGTERM" in e.message).job_id for _ in range(2)}
        assert events == {"polite", "stubborn"}
        polite = _statuses(coordinator, "polite", 1)[0][-1]
        assert (polite.state, polite.exit_code) == (S.TRAINER_PREEMPTED, 75)
        assert any(m.WhichOneof("kind") == "checkpoint" and m.checkpoint.job_id == "polite"
                   for _, m in coordinator.seen)
        stubborn = _statuses(coordinator, "stubborn", 1)[0][-1]
        assert (stubborn.state, stubborn.exit_code) == (S.TRAINER_FAILED, -signal.SIGKILL)
        assert "grace" in stubborn.message
    finally:
        if agent.poll() is None:
            agent.kill()


def test_unstartable_trainer_and_busy_device_are_reported_not_fatal(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, trainer_cmd=str(tmp_path / "no-such-trainer"))
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(job="x"))
        st = coordinator.expect("trainer", lambda s: s.job_id == "x")
        assert st.state == S.TRAINER_FAILED and "could not start the trainer" in st.message
        assert "no-such-trainer" in st.message
        # no socket files left behind (the agent's ipc folder is work/ipc, or a temporary one when that path is
        # too long for a unix socket, as under pytest's numbered folders past 99)
        left = glob.glob(str(tmp_path / "work" / "ipc" / f"t{agent.pid}-*"))
        left += glob.glob(os.path.join(tempfile.gettempdir(), "byol-ipc-*", f"t{agent.pid}-*"))
        assert not left, left
        now_ms = time.time() * 1000
        coordinator.expect("heartbeat", lambda h: h.sent_unix_ms > now_ms)  # still connected
    finally:
        assert stop_agent(agent) == 0
    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(job="first", then="wait"))
        coordinator.expect("trainer", lambda s: s.job_id == "first" and s.state == S.TRAINER_STARTING)
        coordinator.send(assign=assignment(job="second"))
        st = coordinator.expect("trainer", lambda s: s.job_id == "second")
        assert st.state == S.TRAINER_FAILED and "cpu:0 is busy with job first" in st.message
    finally:
        assert stop_agent(agent) == 0


def test_trainers_die_with_a_sigkilled_agent(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(then="hang", on_sigterm="ignore"))
        pid = int(coordinator.expect("event", lambda e: e.message.startswith("pid ")).message.split()[1])
        assert pid_alive(pid)
        agent.kill()
        agent.wait(5)
        deadline = time.monotonic() + 3
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), "an orphaned trainer would keep its device busy"
    finally:
        if agent.poll() is None:
            agent.kill()


def test_second_ctrl_c_kills_without_waiting_for_the_grace(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(grace_s=60, steps=1, then="wait", on_sigterm="ignore"))
        coordinator.expect("progress")
        t0 = time.monotonic()
        agent.send_signal(signal.SIGINT)
        coordinator.expect("event", lambda e: "SIGINT" in e.message)
        agent.send_signal(signal.SIGINT)
        assert agent.wait(10) == 0
        assert time.monotonic() - t0 < 5
        st = coordinator.expect("trainer", lambda s: s.state == S.TRAINER_FAILED)
        assert st.exit_code == -signal.SIGKILL
    finally:
        if agent.poll() is None:
            agent.kill()
