"""Two-phase rendezvous: rank 0's agent hosts a real TCPStore per generation and stops it on ABORT."""
import datetime
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_support import FakeCoordinator, assignment, start_agent, stop_agent  # noqa: E402

from byol_worker.proto import agent_pb2  # noqa: E402


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def coordinator():
    c = FakeCoordinator()
    yield c
    c.stop()


def test_host_store_then_start_rank0_then_abort_stops_store(coordinator, tmp_path):
    from torch.distributed import TCPStore

    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(gen=2, world=2, address="", host_rendezvous=True))
        ready = coordinator.expect("rendezvous")
        assert (ready.job_id, ready.generation) == ("job-a", 2)
        host, port = ready.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        # a trainer of another rank can join it as a client
        client = TCPStore(host, int(port), is_master=False, timeout=datetime.timedelta(seconds=5))
        client.set("gen2/probe", "hello")
        assert client.get("gen2/probe") == b"hello"
        del client
        # a repeated request (coordinator retry) gets the same store, not a second one
        coordinator.send(assign=assignment(gen=2, world=2, address="", host_rendezvous=True))
        assert coordinator.expect("rendezvous").address == ready.address
        # phase two: the same assignment with the address starts rank 0's trainer
        coordinator.send(assign=assignment(gen=2, world=2, address=ready.address, host_rendezvous=True,
                                           then="hang"))
        ev = coordinator.expect("event", lambda e: e.message.startswith("env "))
        assert f"rendezvous={ready.address}" in ev.message
        coordinator.send(command=agent_pb2.Command(job_id="job-a", generation=2, type=agent_pb2.COMMAND_ABORT))
        coordinator.expect("trainer", lambda s: s.state == agent_pb2.TRAINER_ABORTED)
        deadline = time.monotonic() + 5
        while _port_open(int(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _port_open(int(port)), "the aborted generation's TCPStore still listens"
    finally:
        assert stop_agent(agent) == 0


def test_newer_generation_fences_the_old_store_and_drops_stale_messages(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path)
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(gen=1, address="", host_rendezvous=True))
        old_port = int(coordinator.expect("rendezvous").address.rsplit(":", 1)[1])
        coordinator.send(assign=assignment(gen=2, address="", host_rendezvous=True))
        new = coordinator.expect("rendezvous", lambda r: r.generation == 2)
        assert int(new.address.rsplit(":", 1)[1]) != old_port
        assert _port_open(int(new.address.rsplit(":", 1)[1]))
        deadline = time.monotonic() + 5
        while _port_open(old_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _port_open(old_port)
        # generation 1 is fenced: its assignment is dropped, nothing is hosted or started
        coordinator.send(assign=assignment(gen=1, address="", host_rendezvous=True))
        coordinator.send(assign=assignment(gen=3, rank=0, device="cpu:7"))  # marker: unknown device
        st = coordinator.expect("trainer", lambda s: s.state == agent_pb2.TRAINER_FAILED)
        assert st.generation == 3 and "cpu:7" in st.message
        # everything sent before the marker has been seen by now: only the first gen-1 reply exists
        gen1 = [m for _, m in coordinator.seen if m.WhichOneof("kind") == "rendezvous" and m.rendezvous.generation == 1]
        assert len(gen1) == 1
    finally:
        assert stop_agent(agent) == 0


def test_store_outlives_its_last_trainer_by_the_linger_then_stops(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, extra_env={"BYOL_AGENT_STORE_LINGER_S": "1.0"})
    try:
        coordinator.expect("hello")
        coordinator.send(assign=assignment(gen=1, address="", host_rendezvous=True))
        address = coordinator.expect("rendezvous").address
        port = int(address.rsplit(":", 1)[1])
        coordinator.send(assign=assignment(gen=1, address=address, host_rendezvous=True, steps=1))
        coordinator.expect("trainer", lambda s: s.state == agent_pb2.TRAINER_SUCCEEDED)
        t_end = time.monotonic()
        assert _port_open(port), "other ranks may still need the store right after rank 0 ends"
        while _port_open(port) and time.monotonic() - t_end < 5:
            time.sleep(0.05)
        assert 0.5 < time.monotonic() - t_end < 3.0
    finally:
        assert stop_agent(agent) == 0
