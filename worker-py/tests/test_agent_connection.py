"""Agent <-> coordinator over a real gRPC stream: Hello, heartbeats, token refusal, reconnect."""
import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_support import (TOKEN, FakeCoordinator, agent_log, assignment, start_agent,  # noqa: E402
                                stop_agent)

from byol_worker.proto import agent_pb2  # noqa: E402


@pytest.fixture
def coordinator():
    c = FakeCoordinator()
    yield c
    c.stop()


def test_hello_lists_devices_and_versions_then_heartbeats(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, devices="cpu:2")
    try:
        hello = coordinator.expect("hello")
        assert hello.agent_id == "agent-test" and hello.host == "127.0.0.1"
        assert [(d.id, d.kind) for d in hello.devices] == [("cpu:0", "cpu"), ("cpu:1", "cpu")]
        assert all(d.memory_bytes > 0 for d in hello.devices)
        assert {"python", "torch", "byol_worker", "grpc"} <= set(hello.versions)
        assert hello.versions["torch"].startswith("2.")
        assert list(hello.running) == []
        assert coordinator.metadata[0]["authorization"] == f"Bearer {TOKEN}"
        # Welcome asked for 100 ms (the default is 1 s): five heartbeats come within 4 s even on a busy box
        t0 = time.monotonic()
        stamps = [coordinator.expect("heartbeat").sent_unix_ms for _ in range(5)]
        assert time.monotonic() - t0 < 4.0
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        assert all(80 <= g <= 900 for g in gaps), gaps
    finally:
        assert stop_agent(agent) == 0
    assert "event=agent_stopped exit_code=0" in agent_log(tmp_path)


def test_wrong_token_is_fatal_with_exit_3(coordinator, tmp_path):
    agent = start_agent(coordinator.address, tmp_path, token="wrong-token-value")
    try:
        assert agent.wait(15) == 3
    finally:
        if agent.poll() is None:
            agent.kill()
    log = agent_log(tmp_path)
    assert "event=unauthenticated" in log and "BYOL_AGENT_TOKEN" in log
    assert "wrong-token-value" not in log  # the token never reaches the logs
    assert coordinator.connections == 0


def test_reconnect_after_coordinator_restart_lists_running_trainer(tmp_path):
    first = FakeCoordinator()
    port = first.port
    agent = start_agent(first.address, tmp_path)
    try:
        first.expect("hello")
        first.send(assign=assignment(gen=4, steps=3, then="wait"))
        first.expect("progress", lambda p: p.step == 3)
        first.stop()
        time.sleep(0.5)  # a few failed redials, with backoff
        second = FakeCoordinator(port=port)
        try:
            hello = second.expect("hello", timeout=15)
            assert [(r.job_id, r.generation, r.rank, r.device_id, r.step) for r in hello.running] == \
                [("job-a", 4, 0, "cpu:0", 3)]
            # the re-attached trainer is still commanded through the new stream
            second.send(command=agent_pb2.Command(job_id="job-a", generation=4, type=agent_pb2.COMMAND_ABORT))
            st = second.expect("trainer", lambda s: s.state == agent_pb2.TRAINER_ABORTED)
            assert st.exit_code == -9 and st.step == 3
        finally:
            second.stop()
    finally:
        stop_agent(agent)
    assert "event=stream_broken" in agent_log(tmp_path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a test certificate")
def test_tls_with_the_coordinators_ca_and_a_bad_ca_flag(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls = FakeCoordinator(tls=(key.read_bytes(), cert.read_bytes()))
    try:
        agent = start_agent(tls.address, tmp_path, extra_args=["--tls-ca", str(cert)])
        try:
            assert tls.expect("hello").agent_id == "agent-test"
        finally:
            assert stop_agent(agent) == 0
    finally:
        tls.stop()
    bad = start_agent("127.0.0.1:1", tmp_path, extra_args=["--tls-ca", str(key)])  # a key, not a cert
    assert bad.wait(10) == 2
    assert "flag=--tls-ca" in agent_log(tmp_path)
