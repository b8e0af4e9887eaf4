"""The agent's side of `Coordinator.Connect` (docs/internals.md "Agent <-> coordinator").

One thread owns the stream: it dials, reads responses and hands each to `on_message`, which must not
block (trainer work runs elsewhere). grpcio's own thread pulls requests from a generator fed by the
`Outbox`; the generator also emits heartbeats, so they keep flowing whatever the trainers do. A broken
stream is redialled with backoff and a fresh Hello (built by `make_hello`, listing running trainers).
UNAUTHENTICATED is fatal: `on_fatal` is called and the thread ends. Welcome carries this agent id's session
key; every later Hello presents it, so that no other holder of the shared token can claim the id. A
PERMISSION_DENIED (the id is taken, or the key is not the id's) is logged and redialled without the key.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

import grpc

from ..proto import agent_pb2, agent_pb2_grpc
from .backoff import backoff_delay
from .logfmt import event
from .outbox import Outbox
from .tls import TlsSettings

log = logging.getLogger("byol.agent.connection")

_CHANNEL_OPTIONS = [
    # our own backoff decides when to redial; keep grpc's channel backoff from adding minutes to it
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # a cut network (no RST) must still end the stream so that we redial: ping every 20 s, give up after 10 s
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 10000),
]
DEFAULT_HEARTBEAT_MS = 1000


def _hint(reason: str, tls: object) -> str:
    low = reason.lower()
    if any(w in low for w in ("ssl", "handshake", "certificate", "tls", "verification", "tsi_")):
        return ("TLS failed: check --tls-ca (the CA that signed the coordinator's certificate), that the certificate "
                "names the address dialled (else --tls-server-name), and --tls-cert/--tls-key if the coordinator "
                "requires client certificates")
    if tls is None and ("connection reset" in low or "socket closed" in low):
        return "the coordinator may serve TLS: start the agent with --tls-ca FILE"
    return "trainers keep running; check that the coordinator is up at this address"


class _StreamState:
    """Per-stream flags shared by the reader thread and grpc's request thread."""

    def __init__(self) -> None:
        self.closed = threading.Event()     # the stream is over: the generator must stop
        self.half_close = threading.Event()  # we are leaving: end the requests once the outbox is empty
        self.heartbeat_ms = DEFAULT_HEARTBEAT_MS


class Connection:
    def __init__(self, target: str, token: str, make_hello: Callable[[], agent_pb2.Hello],
                 on_message: Callable[[agent_pb2.CoordinatorMessage], None],
                 on_fatal: Callable[[str], None], outbox: Outbox | None = None,
                 tls: TlsSettings | None = None) -> None:
        self.target = target
        self._tls = tls.channel_credentials() if tls else None
        self._options = _CHANNEL_OPTIONS + (tls.channel_options() if tls else [])
        self.session_key = ""  # from the last Welcome; presented in every later Hello
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._make_hello = make_hello
        self._on_message = on_message
        self._on_fatal = on_fatal
        self.outbox = outbox or Outbox()
        self._stop = threading.Event()
        self._stream: _StreamState | None = None
        self._call = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="byol-agent-conn", daemon=True)
        self.connected = threading.Event()  # set while a stream has been welcomed
        self._rng = random.Random()

    def start(self) -> None:
        self._thread.start()

    def send(self, msg: agent_pb2.AgentMessage) -> None:
        """Queue a message; never blocks on the network."""
        self.outbox.put(msg)

    def close(self, flush_timeout_s: float = 1.0) -> None:
        """Send what is queued, half-close the stream and stop redialling, all within `flush_timeout_s`
        (then the stream is cancelled)."""
        deadline = time.monotonic() + flush_timeout_s
        self._stop.set()
        with self._lock:
            stream, call = self._stream, self._call
        if stream is not None and self.connected.is_set():
            self.outbox.wait_empty(flush_timeout_s)
            stream.half_close.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if call is not None and self._thread.is_alive():
            call.cancel()  # the coordinator did not end the stream after our half-close
            self._thread.join(0.5)

    # -- the stream thread ------------------------------------------------------------------------
    def _requests(self, stream: _StreamState):
        hello = self._make_hello()
        hello.session_key = self.session_key
        yield agent_pb2.AgentMessage(hello=hello)
        last_beat = time.monotonic()
        while not stream.closed.is_set():
            next_beat = last_beat + stream.heartbeat_ms / 1000  # Welcome may change the interval
            wait = max(0.0, min(0.1, next_beat - time.monotonic()))
            msg = self.outbox.get(wait)
            if msg is not None:
                if stream.closed.is_set():
                    self.outbox.unget(msg)  # the next stream sends it
                    return
                yield msg
            elif stream.half_close.is_set():
                return
            if time.monotonic() >= next_beat:
                last_beat = time.monotonic()
                yield agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(sent_unix_ms=int(time.time() * 1000)))

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            stream = _StreamState()
            channel = (grpc.secure_channel(self.target, self._tls, options=self._options) if self._tls
                       else grpc.insecure_channel(self.target, options=self._options))
            call = agent_pb2_grpc.CoordinatorStub(channel).Connect(self._requests(stream), metadata=self._metadata)
            with self._lock:
                self._stream, self._call = stream, call
            reason = "closed by the coordinator"
            try:
                for resp in call:
                    if resp.HasField("welcome"):
                        attempt = 0
                        if resp.welcome.session_key:
                            self.session_key = resp.welcome.session_key
                        if resp.welcome.heartbeat_interval_ms > 0:
                            stream.heartbeat_ms = resp.welcome.heartbeat_interval_ms
                        self.connected.set()
                        event(log, "connected", coordinator=self.target, heartbeat_ms=stream.heartbeat_ms,
                              telemetry=resp.welcome.telemetry_address)
                    try:
                        self._on_message(resp)
                    except Exception:  # one bad message must not end the stream
                        log.exception("handling a coordinator message failed; it was skipped")
            except grpc.RpcError as e:
                code = e.code()
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    stream.closed.set()
                    channel.close()
                    self.connected.clear()
                    self._on_fatal(f"the coordinator refused the join token: {e.details()}")
                    # stay alive until close(): trainers this thread spawned die with it (PDEATHSIG)
                    self._stop.wait()
                    return
                reason = f"{code.name if code else 'UNKNOWN'}: {e.details()}"
                if code == grpc.StatusCode.PERMISSION_DENIED:
                    event(log, "claim_refused", logging.ERROR, coordinator=self.target, reason=e.details(),
                          hint="another agent holds this --agent-id, or the coordinator's session secret changed; "
                               "give each agent its own --agent-id")
                    self.session_key = ""  # register afresh: allowed once the id is free
            finally:
                stream.closed.set()
                self.connected.clear()
                channel.close()
            if self._stop.is_set():
                break
            delay = backoff_delay(attempt, self._rng)
            attempt += 1
            event(log, "stream_broken", logging.WARNING, coordinator=self.target, reason=reason,
                  retry_in_s=round(delay, 2), attempt=attempt, queued=len(self.outbox), hint=_hint(reason, self._tls))
            self._stop.wait(delay)
        event(log, "stream_closed", coordinator=self.target)
