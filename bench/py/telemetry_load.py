"""Load generator for the telemetry ingest benchmark (bench/ts/telemetry-ingest.ts starts it).

    .venv/bin/python bench/py/telemetry_load.py --address tcp://127.0.0.1:PORT --job JOB --ranks 64 --steps 2000

Simulates `--ranks` trainer ranks, one ZeroMQ PUSH socket each (as real trainers connect), sending real
byol.v1.Metric frames step by step (every rank's frame of step k, then k+1, ...) as fast as it can. Frames
are encoded before the clock starts, so the generator measures the receiver, not Python's protobuf.
Sends block when the receiver's queue is full (no drops), so every frame is counted. Prints "ready" when
connected and encoded, waits for "go" on stdin, then prints one JSON line with what it sent.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import sys
import time

import zmq

from byol_worker.proto import telemetry_pb2


def frames(job: str, generation: int, ranks: int, steps: int, keys: list[bytes]) -> list[list[list[bytes]]]:
    """frames[step][rank] = [Metric, HMAC-SHA256 under that rank's key], with plausible values (84-110 bytes each,
    like the trainer's)."""
    out = []
    now = int(time.time() * 1000)
    for k in range(steps):
        row = []
        for r in range(ranks):
            m = telemetry_pb2.Metric(job_id=job, generation=generation, rank=r, world_size=ranks, step=k,
                                     loss=4.0 - 2.0 * k / steps + 0.001 * r, tau=0.99 + 0.01 * (1 - math.cos(math.pi * k / steps)) / 2,
                                     lr=0.2 * k / steps, step_time_s=0.25 + 0.001 * r, data_time_s=0.01,
                                     images_per_sec=512.0, epoch=k / 100.0, dropped=0, sent_unix_ms=now + k)
            m.extra["z_std"] = 0.05
            data = m.SerializeToString()
            row.append([data, hmac.new(keys[r], data, hashlib.sha256).digest()])
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--generation", type=int, default=1)
    ap.add_argument("--ranks", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--keys", required=True, help="comma-separated hex telemetry keys, one per rank")
    a = ap.parse_args(argv)
    keys = [bytes.fromhex(k) for k in a.keys.split(",")]
    if len(keys) != a.ranks:
        ap.error(f"--keys: expected {a.ranks} keys, got {len(keys)}")
    data = frames(a.job, a.generation, a.ranks, a.steps, keys)
    ctx = zmq.Context(io_threads=1)
    socks = []
    for _ in range(a.ranks):
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDHWM, 1000)
        s.setsockopt(zmq.LINGER, -1)  # close() waits until every queued frame is delivered
        s.connect(a.address)
        socks.append(s)
    time.sleep(0.5)  # let every connection finish its handshake before the clock starts
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    t0 = time.perf_counter()
    c0 = time.process_time()
    for row in data:
        for s, f in zip(socks, row):
            s.send_multipart(f, copy=False)
    send_s = time.perf_counter() - t0  # time to enqueue: the sockets buffer what the receiver has not taken
    cpu = time.process_time() - c0
    for s in socks:
        s.close()
    ctx.term()  # returns once every queued frame is handed to the receiver (LINGER -1)
    total = a.ranks * a.steps
    print(json.dumps({"sent": total, "enqueue_s": round(send_s, 4),
                      "sender_cpu_s": round(cpu, 3), "frame_bytes": len(data[0][0][0])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
