"""The agent's secrets (issue 11): the token from a file, the session key presented on reconnect, a private
work folder removed on exit, trainers without the token, and TLS flags refused with the flag named."""
import os
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_agent_support import TOKEN, FakeCoordinator, agent_log, start_agent, stop_agent  # noqa: E402

from byol_worker.agent.tls import TlsFlagError, load_tls  # noqa: E402


def _agent(coordinator: str, tmp_path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """A real agent without --work-dir and without the token in its environment; log in tmp_path/agent.log."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BYOL_")}
    log = open(os.path.join(str(tmp_path), "agent.log"), "wb")
    return subprocess.Popen([sys.executable, "-m", "byol_worker.agent", "--coordinator", coordinator,
                             "--agent-id", "secret-test", "--host", "127.0.0.1", "--devices", "cpu:1", *args],
                            env={**base, "PYTHONUNBUFFERED": "1", **(env or {})}, stdout=log, stderr=subprocess.STDOUT)


def test_token_file_private_work_folder_removed_on_exit(tmp_path):
    coordinator = FakeCoordinator()
    token_file, tmp = tmp_path / "token", tmp_path / "tmp"
    token_file.write_text(TOKEN + "\n")
    tmp.mkdir()
    agent = _agent(coordinator.address, tmp_path, "--token-file", str(token_file), env={"TMPDIR": str(tmp)})
    try:
        coordinator.expect("hello")
        assert coordinator.metadata[0]["authorization"] == f"Bearer {TOKEN}"
        [work] = [p for p in tmp.iterdir() if p.name.startswith("byol-agent-secret-test-")]
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
    finally:
        assert stop_agent(agent) == 0
        coordinator.stop()
    assert not [p for p in tmp.iterdir() if p.name.startswith("byol-agent-")]
    assert TOKEN not in agent_log(tmp_path)


def test_unreadable_token_file_is_a_flag_error(tmp_path):
    agent = _agent("127.0.0.1:1", tmp_path, "--token-file", str(tmp_path / "missing"))
    assert agent.wait(15) == 2
    assert "flag=--token-file" in agent_log(tmp_path)


def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_session_key_from_welcome_is_presented_on_reconnect(tmp_path):
    first = FakeCoordinator()
    first.session_key = "key-of-agent-test"
    port = first.port
    agent = start_agent(first.address, tmp_path)
    try:
        assert first.expect("hello").session_key == ""  # a first registration has none
        _wait_for(lambda: "event=connected " in agent_log(tmp_path))  # the Welcome, and its key, arrived
        first.stop()
        time.sleep(0.3)
        second = FakeCoordinator(port=port)
        try:
            assert second.expect("hello", timeout=15).session_key == "key-of-agent-test"
        finally:
            second.stop()
    finally:
        stop_agent(agent)


def test_tls_flags_are_checked_and_named(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    assert load_tls("", "", "", "") is None
    cases = [(("", str(cert), "", ""), "--tls-cert"), ((str(cert), str(cert), "", ""), "--tls-key"),
             ((str(cert), str(cert), str(cert), ""), "--tls-key"), ((str(tmp_path / "no"), "", "", ""), "--tls-ca"),
             (("", "", "", "name"), "--tls-server-name")]
    for args, flag in cases:
        with pytest.raises(TlsFlagError) as e:
            load_tls(*args)
        assert e.value.flag == flag, (args, e.value.flag)
