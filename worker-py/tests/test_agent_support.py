"""Shared pieces of the agent tests (no tests here): a real grpcio server playing the coordinator's side
of `Coordinator.Connect`, a launcher for a real agent process, and a tiny real trainer stand-in that speaks
the agent's zmq channels (selected through the BYOL_TRAINER_CMD test hook)."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

from byol_worker.proto import agent_pb2, agent_pb2_grpc

TOKEN = "s3cret-join-token"


class FakeCoordinator(agent_pb2_grpc.CoordinatorServicer):
    """Accepts agents with the right bearer token, answers Welcome, records every AgentMessage."""

    def __init__(self, port: int = 0, token: str = TOKEN, heartbeat_ms: int = 100,
                 tls: tuple[bytes, bytes] | None = None) -> None:
        """tls: (private key PEM, certificate PEM) to serve TLS instead of plaintext."""
        self.token, self.heartbeat_ms = token, heartbeat_ms
        self.session_key = ""  # sent in every Welcome, as the real coordinator's per-agent key
        self.received: queue.Queue = queue.Queue()  # (connection number, AgentMessage)
        self.seen: list = []  # every message received, in order
        self._pending: list = []  # received and not yet returned by expect()
        self._outs: dict[int, queue.Queue] = {}
        self.connections = 0
        self.metadata: list[dict] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        agent_pb2_grpc.add_CoordinatorServicer_to_server(self, self.server)
        if tls:
            creds = grpc.ssl_server_credentials([tls])
            self.port = self.server.add_secure_port(f"127.0.0.1:{port}", creds)
        else:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        assert self.port, "could not bind the fake coordinator"
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def Connect(self, request_iterator, context):
        md = dict(context.invocation_metadata())
        self.metadata.append(md)
        if md.get("authorization") != f"Bearer {self.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad join token")
        self.connections += 1
        conn, out = self.connections, queue.Queue()
        self._outs[conn] = out

        def read():
            try:
                for m in request_iterator:
                    self.received.put((conn, m))
            except grpc.RpcError:
                pass
            out.put(None)

        threading.Thread(target=read, daemon=True).start()
        yield agent_pb2.CoordinatorMessage(welcome=agent_pb2.Welcome(
            agent_id="x", heartbeat_interval_ms=self.heartbeat_ms, telemetry_address="tcp://127.0.0.1:1",
            session_key=self.session_key))
        while context.is_active():
            try:
                m = out.get(timeout=0.1)
            except queue.Empty:
                continue
            if m is None:  # the agent half-closed
                return
            yield m

    def send(self, **kind) -> None:
        """Send a CoordinatorMessage(**kind) on the newest stream."""
        self._outs[self.connections].put(agent_pb2.CoordinatorMessage(**kind))

    def expect(self, kind: str, pred=lambda m: True, timeout: float = 30.0):
        """The oldest not yet expected AgentMessage of this oneof kind whose payload satisfies pred (a
        mailbox: messages that do not match stay for later calls), else AssertionError."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (_, m) in enumerate(self._pending):
                if m.WhichOneof("kind") == kind and pred(getattr(m, kind)):
                    del self._pending[i]
                    return getattr(m, kind)
            left = deadline - time.monotonic()
            if left <= 0:
                kinds = [m.WhichOneof("kind") for _, m in self.seen if m.WhichOneof("kind") != "heartbeat"]
                raise AssertionError(f"no {kind} message within {timeout}s; seen: {kinds[-30:]}")
            try:
                item = self.received.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            self.seen.append(item)
            self._pending.append(item)

    def stop(self) -> None:
        self.server.stop(0).wait()


FAKE_TRAINER = r'''
import json, os, select, signal, subprocess, sys, time
import zmq
from byol_worker.proto import agent_pb2, trainer_pb2

a = json.load(open(sys.argv[sys.argv.index("--assignment") + 1]))
fake = json.loads(a["spec_json"])["spec"]["fake"]
ctx = zmq.Context()
rep = ctx.socket(zmq.PUSH); rep.setsockopt(zmq.LINGER, 2000); rep.connect(a["report_address"])
ctl = ctx.socket(zmq.PULL); ctl.setsockopt(zmq.LINGER, 0); ctl.connect(a["control_address"])
step = 0
stop = []

def send(**kw):
    rep.send(trainer_pb2.TrainerReport(**kw).SerializeToString())

def event(msg):
    send(event=agent_pb2.AgentEvent(level="info", message=msg))

def leave(code, err=""):
    if err:
        print(err, file=sys.stderr, flush=True)
    rep.close(); ctl.close(); ctx.term()
    sys.exit(code)

def checkpoint_and_leave():
    send(checkpoint=agent_pb2.CheckpointReport(step=step, ok=True, path="ckpt/step-%09d" % step, bytes=1, sha256="ab"))
    leave(75)

if fake.get("on_sigterm") == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
if fake.get("child_pidfile"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(fake["child_pidfile"], "w").write(str(child.pid))
print("fake trainer up", flush=True)
event("pid %d" % os.getpid())
event("env BYOL_DEVICE=%s OMP_NUM_THREADS=%s rendezvous=%s" % (
    os.environ.get("BYOL_DEVICE"), os.environ.get("OMP_NUM_THREADS"), a["rendezvous_address"]))
while True:
    while True:
        try:
            raw = ctl.recv(zmq.NOBLOCK)
        except zmq.Again:
            break
        c = trainer_pb2.TrainerControl(); c.ParseFromString(raw)
        event("control %s step=%d" % (agent_pb2.CommandType.Name(c.type), c.step))
        if c.type == agent_pb2.COMMAND_STOP_AT_STEP:
            checkpoint_and_leave()
    if stop:
        event("sigterm")
        checkpoint_and_leave()
    if step < fake.get("steps", 0):
        step += 1
        send(progress=agent_pb2.Progress(step=step, epoch=step / 10))
        time.sleep(fake.get("interval", 0.02))
        continue
    then = fake.get("then", "exit:0")
    if then == "hang":  # a blocking call that signals do not end, like a stuck collective
        event("hanging")
        while True:
            select.select([], [], [])
    if then == "wait":
        time.sleep(0.02)
        continue
    if then.startswith("kill:"):  # killed from outside after a routine log line (the OOM killer, a user)
        print(fake.get("stderr", ""), file=sys.stderr, flush=True)
        os.kill(os.getpid(), int(then.split(":")[1]))
        time.sleep(60)
    leave(int(then.split(":")[1]), fake.get("stderr", ""))
'''


def write_fake_trainer(tmp_path) -> str:
    path = os.path.join(str(tmp_path), "fake_trainer.py")
    with open(path, "w") as f:
        f.write(FAKE_TRAINER)
    return path


def start_agent(coordinator: str, tmp_path, token: str = TOKEN, devices: str = "cpu:1",
                trainer_cmd: str | None = None, extra_env: dict | None = None,
                extra_args: list[str] | None = None) -> subprocess.Popen:
    """A real agent process; its log goes to tmp_path/agent.log (read with `agent_log`)."""
    env = dict(os.environ, BYOL_AGENT_TOKEN=token, PYTHONUNBUFFERED="1")
    env.pop("BYOL_TRAINER_CMD", None)
    if trainer_cmd is None:
        trainer_cmd = f"{sys.executable} {write_fake_trainer(tmp_path)}"
    if trainer_cmd:
        env["BYOL_TRAINER_CMD"] = trainer_cmd
    env.update(extra_env or {})
    log = open(os.path.join(str(tmp_path), "agent.log"), "wb")
    return subprocess.Popen([sys.executable, "-m", "byol_worker.agent", "--coordinator", coordinator,
                             "--agent-id", "agent-test", "--host", "127.0.0.1", "--devices", devices,
                             "--work-dir", os.path.join(str(tmp_path), "work"), "--log-level", "debug",
                             *(extra_args or [])],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def agent_log(tmp_path) -> str:
    with open(os.path.join(str(tmp_path), "agent.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


def stop_agent(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def assignment(job: str = "job-a", gen: int = 1, rank: int = 0, device: str = "cpu:0", world: int = 1,
               address: str = "127.0.0.1:1", host_rendezvous: bool = False, grace_s: int = 5,
               threads: int = 0, **fake) -> agent_pb2.Assignment:
    """An assignment whose spec carries the fake trainer's script under spec.fake."""
    spec = {"spec": {"preemption": {"gracePeriodSeconds": grace_s}, "resources": {"threadsPerWorker": threads},
                     "fake": fake}}
    return agent_pb2.Assignment(job_id=job, generation=gen, rank=rank, world_size=world, device_id=device,
                                host_rendezvous=host_rendezvous, rendezvous_address=address,
                                spec_json=json.dumps(spec), checkpoint_dir="/tmp/ckpt")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
