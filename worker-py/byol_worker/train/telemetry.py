"""Per-step metrics to the coordinator over ZeroMQ PUSH (docs/internals.md "Telemetry").

Sending never blocks training: the socket has a bounded queue (SNDHWM) and sends with NOBLOCK; a frame
that does not fit is dropped and counted. With no address every call is a no-op.

Each message is two ZeroMQ frames: the encoded Metric and HMAC-SHA256 of it under the rank's
`Assignment.telemetry_key`, which proves to the coordinator that the frame comes from the holder of this
(job, generation, rank). Without a key (standalone runs) only the Metric is sent; a coordinator drops that.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Mapping

from ..optional import zmq

from ..proto import telemetry_pb2

log = logging.getLogger("byol.telemetry")


class TelemetrySender:
    """One per trainer rank; `send()` costs an encode and a non-blocking enqueue."""

    def __init__(self, address: str, *, job_id: str, generation: int, rank: int, world_size: int,
                 hwm: int = 1000, key: bytes = b"") -> None:
        self.address = address
        self._key = bytes(key)
        self.dropped = 0
        self.sent = 0
        self._base = dict(job_id=job_id, generation=generation, rank=rank, world_size=world_size)
        self._sock = None
        if address:
            self._ctx = zmq.Context.instance()
            self._sock = self._ctx.socket(zmq.PUSH)
            self._sock.setsockopt(zmq.SNDHWM, hwm)
            self._sock.setsockopt(zmq.LINGER, 200)  # flush briefly at exit, never hang on a dead coordinator
            self._sock.connect(address)

    def send(self, *, step: int, loss: float, tau: float, lr: float, step_time_s: float, data_time_s: float,
             images_per_sec: float, epoch: float, sync_wait_ms: float = 0.0,
             extra: Mapping[str, float] | None = None) -> bool:
        """Queue one Metric frame; returns False (and counts it) when the queue is full."""
        if self._sock is None:
            return False
        m = telemetry_pb2.Metric(step=step, loss=loss, tau=tau, lr=lr, step_time_s=step_time_s,
                                 data_time_s=data_time_s, images_per_sec=images_per_sec, epoch=epoch,
                                 sync_wait_ms=sync_wait_ms,
                                 dropped=self.dropped, sent_unix_ms=int(time.time() * 1000), **self._base)
        for key, value in (extra or {}).items():
            m.extra[key] = float(value)
        data = m.SerializeToString()
        parts = [data, hmac.new(self._key, data, hashlib.sha256).digest()] if self._key else [data]
        try:
            self._sock.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            if self.dropped in (1, 100, 10000):
                log.warning("telemetry queue to %s is full: %d frames dropped so far (is the coordinator up?)",
                            self.address, self.dropped)
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
