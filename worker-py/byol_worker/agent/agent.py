"""The agent: joins the coordinator, hosts rendezvous stores, supervises trainers, handles preemption.

Threads: the main thread waits for a signal or a fatal error and then runs the shutdown; the connection
thread reads coordinator messages and dispatches them here (each handler returns quickly: spawning,
signalling and a zmq NOBLOCK send are all it does); grpcio's thread sends the outbox and heartbeats;
each trainer has a watcher thread that relays its reports and final status.
"""
from __future__ import annotations

import logging
import signal
import threading
import time

import zmq

from ..proto import agent_pb2
from .connection import Connection
from .devices import Device, versions
from .logfmt import event
from .outbox import Outbox
from .rendezvous import RendezvousHost
from .supervisor import AssignmentError, Supervisor, grace_period_s
from .tls import TlsSettings
from .trainer_process import TrainerProcess

log = logging.getLogger("byol.agent")
EXIT_UNAUTHENTICATED = 3


class Agent:
    def __init__(self, coordinator: str, token: str, agent_id: str, host: str, devices: list[Device],
                 work_dir: str, store_linger_s: float = 5.0, tls: TlsSettings | None = None) -> None:
        self.agent_id, self.host, self.devices = agent_id, host, devices
        self.outbox = Outbox()
        self.supervisor = Supervisor(devices, work_dir, relay=self.send, on_trainer_exit=self._trainer_exited)
        self.rendezvous = RendezvousHost(host, linger_s=store_linger_s)
        self.conn = Connection(coordinator, token, self._hello, self._on_message, self._on_fatal, self.outbox,
                               tls=tls)
        self._versions = versions()
        self._latest_gen: dict[str, int] = {}
        self._gen_lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._stop_at = 0.0
        self._exit_code = 0
        self._shutting_down = False
        self._assign_lock = threading.Lock()

    def send(self, msg: agent_pb2.AgentMessage) -> None:
        self.conn.send(msg)

    def _hello(self) -> agent_pb2.Hello:
        return agent_pb2.Hello(
            agent_id=self.agent_id, host=self.host, versions=self._versions,
            devices=[agent_pb2.Device(id=d.id, kind=d.kind, name=d.name, memory_bytes=d.memory_bytes)
                     for d in self.devices],
            running=self.supervisor.running())

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0 after the trainers stop) or a refused token (exit 3)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        event(log, "agent_started", agent_id=self.agent_id, coordinator=self.conn.target, host=self.host,
              devices=",".join(d.id for d in self.devices), work_dir=self.supervisor.work_dir)
        self.conn.start()
        self.rendezvous.warm_up()  # the store server imports torch now, not when a recovery waits for it
        while not self._stop.wait(0.5):
            pass
        self._shutdown()
        return self._exit_code

    def _on_signal(self, signum: int, _frame) -> None:
        if not self._stop.is_set():
            self._stop_reason, self._stop_at = signal.Signals(signum).name, time.monotonic()
            self._stop.set()
        elif signum == signal.SIGINT:  # a second Ctrl-C: do not wait for the checkpoint
            event(log, "second_interrupt", logging.WARNING, action="killing trainers now")
            self.supervisor.kill(self.supervisor.all(), after_grace=True)

    def _on_fatal(self, reason: str) -> None:
        event(log, "unauthenticated", logging.ERROR, reason=reason, exit_code=EXIT_UNAUTHENTICATED,
              hint="set the agent's token env var (--token-env, default BYOL_AGENT_TOKEN) to the coordinator's join token")
        self._exit_code = EXIT_UNAUTHENTICATED
        self._stop_reason, self._stop_at = "unauthenticated", time.monotonic()
        self._stop.set()

    def _shutdown(self) -> None:
        with self._assign_lock:  # no trainer starts after this snapshot
            self._shutting_down = True
            trainers = self.supervisor.all()
        grace = max([grace_period_s(t.assignment.spec_json) for t in trainers], default=0.0)
        event(log, "agent_stopping", logging.WARNING, reason=self._stop_reason, trainers=len(trainers),
              grace_s=grace)
        for job_id, gen in sorted({t.key[:2] for t in trainers}):
            self.send(agent_pb2.AgentMessage(event=agent_pb2.AgentEvent(
                job_id=job_id, generation=gen, level="warn", draining=True,
                message=f"agent {self.agent_id} got {self._stop_reason}: trainers will checkpoint at a common "
                        f"step and exit (grace {grace:g}s)")))
        for t in trainers:
            t.terminate()
        reserve = min(2.0, 0.2 * grace)  # time left after the kill to report the statuses
        kill_at = self._stop_at + grace - reserve
        if not self.supervisor.wait(trainers, kill_at):
            left = [t for t in trainers if not t.done.is_set()]
            self.supervisor.kill(left, after_grace=True)
            self.supervisor.wait(left, time.monotonic() + max(0.5, reserve / 2))
        self.rendezvous.stop_all("agent stopping")
        self.supervisor.close()
        flush = max(0.3, min(2.0, self._stop_at + grace - time.monotonic() - 0.1))
        self.conn.close(flush_timeout_s=flush)
        event(log, "agent_stopped", exit_code=self._exit_code, seconds=round(time.monotonic() - self._stop_at, 2))

    # -- coordinator messages (connection thread: never block here) -----------------------------
    def _on_message(self, msg: agent_pb2.CoordinatorMessage) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "assign":
            self._on_assignment(msg.assign)
        elif kind == "command":
            self._on_command(msg.command)

    def _fence(self, job_id: str, gen: int) -> bool:
        """Track the newest generation per job; False for a message of an older one. A newer generation
        fences this agent's trainers and store of the older ones."""
        with self._gen_lock:
            latest = self._latest_gen.get(job_id, -1)
            if gen < latest:
                return False
            self._latest_gen[job_id] = gen
        if gen > latest:
            old = [t for t in self.supervisor.find(job_id) if t.key[1] < gen]
            self.supervisor.kill(old, aborted=True)
            self.rendezvous.stop_older(job_id, gen)
        return True

    def _fail(self, a: agent_pb2.Assignment, message: str) -> None:
        event(log, "assignment_refused", logging.ERROR, job=a.job_id, generation=a.generation, rank=a.rank,
              device=a.device_id, reason=message)
        self.send(agent_pb2.AgentMessage(trainer=agent_pb2.TrainerStatus(
            job_id=a.job_id, generation=a.generation, rank=a.rank, state=agent_pb2.TRAINER_FAILED,
            exit_code=-1, message=message)))

    def _on_assignment(self, a: agent_pb2.Assignment) -> None:
        with self._assign_lock:
            self._assign(a)

    def _assign(self, a: agent_pb2.Assignment) -> None:
        fields = dict(job=a.job_id, generation=a.generation, rank=a.rank, device=a.device_id)
        if self._shutting_down:
            return self._fail(a, f"agent {self.agent_id} is shutting down ({self._stop_reason})")
        if not self._fence(a.job_id, a.generation):
            event(log, "stale_assignment_dropped", logging.WARNING, **fields)
            return
        if a.host_rendezvous and not a.rendezvous_address:
            try:
                address = self.rendezvous.host_store(a.job_id, a.generation)
            except Exception as e:  # e.g. --host is not an address of this machine
                return self._fail(a, f"could not host the rendezvous store on --host {self.host}: {e}")
            self.send(agent_pb2.AgentMessage(rendezvous=agent_pb2.RendezvousReady(
                job_id=a.job_id, generation=a.generation, address=address)))
            return
        if not a.rendezvous_address:
            return self._fail(a, "assignment has no rendezvous_address and is not a host_rendezvous request")
        try:
            self.supervisor.start(a)
        except (AssignmentError, OSError, zmq.ZMQError) as e:
            self._fail(a, f"could not start the trainer: {e}")

    def _on_command(self, c: agent_pb2.Command) -> None:
        name = agent_pb2.CommandType.Name(c.type)
        fields = dict(job=c.job_id, generation=c.generation, command=name, step=c.step)
        with self._gen_lock:
            if c.generation < self._latest_gen.get(c.job_id, -1):
                event(log, "stale_command_dropped", logging.WARNING, **fields)
                return
        trainers = self.supervisor.find(c.job_id, c.generation)
        if c.type == agent_pb2.COMMAND_ABORT:
            self.supervisor.kill(trainers, aborted=True)
            stopped = self.rendezvous.stop(c.job_id, c.generation, "aborted")
            event(log, "aborted", logging.WARNING, trainers=len(trainers), store_stopped=stopped, **fields)
            return
        if not trainers:
            event(log, "command_dropped", logging.WARNING, reason="no trainer of this job generation here", **fields)
            return
        for t in trainers:
            ok = t.control(c.type, c.step)
            event(log, "command_relayed" if ok else "command_not_delivered",
                  logging.INFO if ok else logging.WARNING, rank=t.key[2], **fields)

    def _trainer_exited(self, proc: TrainerProcess) -> None:
        job_id, gen, _ = proc.key
        if not self.supervisor.find(job_id, gen):
            self.rendezvous.stop_later(job_id, gen, "the generation's trainers on this agent ended")
