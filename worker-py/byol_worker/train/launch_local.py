"""Standalone training without a coordinator: `python -m byol_worker train --spec job.yaml [--nproc N]`.

The launcher plays the agent's part on one host: it resolves the spec (or takes a resolved one), hosts the
rendezvous TCPStore, binds the control/report channels and a telemetry PULL, writes one assignment file per rank
and spawns the same `python -m byol_worker trainer` processes an agent would. Ctrl-C or SIGTERM is relayed to the trainers as
SIGTERM (they agree on a step, checkpoint and exit 75); a second one kills them.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

from ..core import checkpoint as ckpt
from .control import assignment_file, schedule_from_plan
from .logging_setup import setup_logging
from ..optional import zmq
from ..proto import agent_pb2, telemetry_pb2, trainer_pb2

log = logging.getLogger("byol.launch")


class LocalGroup:
    """N trainer processes of one generation on this host, with the agent-side sockets (tests use it too)."""

    def __init__(self, resolved: dict, schedule: dict, nproc: int, checkpoint_dir: str, *, resume: str = "",
                 stop_at_step: int = 0, telemetry_address: str = "", job_id: str = "local", generation: int = 1,
                 device: str = "cpu", env: dict | None = None, spec_hash: str = "") -> None:
        from torch.distributed import TCPStore
        self.nproc, self.job_id, self.generation = nproc, job_id, generation
        self.dir = tempfile.mkdtemp(prefix="byol-launch-")
        self.store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                              timeout=datetime.timedelta(seconds=60))
        self.ctx = zmq.Context.instance()
        self.report = self.ctx.socket(zmq.PULL)
        self.report.bind(f"ipc://{self.dir}/report")
        self.controls = []
        self.telemetry = None
        if not telemetry_address:  # our own PULL: per-step losses and the final kNN for the log
            self.telemetry = self.ctx.socket(zmq.PULL)
            telemetry_address = f"ipc://{self.dir}/telemetry"
            self.telemetry.bind(telemetry_address)
        self.procs: list[subprocess.Popen] = []
        for rank in range(nproc):
            ctl = self.ctx.socket(zmq.PUSH)
            ctl.setsockopt(zmq.LINGER, 0)
            ctl.bind(f"ipc://{self.dir}/control-{rank}")
            self.controls.append(ctl)
            dev = f"cuda:{rank}" if device == "cuda" else "cpu"  # one GPU per rank (local_device_kind checked)
            a = agent_pb2.Assignment(
                job_id=job_id, generation=generation, rank=rank, world_size=nproc, device_id=dev,
                rendezvous_address=f"127.0.0.1:{self.store.port}", host_rendezvous=rank == 0,
                spec_json=json.dumps(resolved), spec_hash=spec_hash, schedule=schedule_from_plan(schedule),
                resume_checkpoint=resume,
                checkpoint_dir=os.path.abspath(checkpoint_dir), telemetry_address=telemetry_address,
                stop_at_step=stop_at_step)
            doc = assignment_file(a, f"ipc://{self.dir}/control-{rank}", f"ipc://{self.dir}/report")
            path = os.path.join(self.dir, f"assignment-{rank}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            penv = dict(os.environ, **(env or {}), BYOL_DEVICE=dev, BYOL_LOCAL_WORLD_SIZE=str(nproc),
                        BYOL_LOCAL_RANK=str(rank))
            self.procs.append(subprocess.Popen([sys.executable, "-m", "byol_worker", "trainer", "--assignment", path],
                                               env=penv))
        log.info("started %d trainer(s), rendezvous 127.0.0.1:%d, files in %s", nproc, self.store.port, self.dir)

    def command(self, rank: int, kind: int, step: int = 0) -> None:
        """Send a TrainerControl (agent_pb2.COMMAND_*) to one rank."""
        self.controls[rank].send(trainer_pb2.TrainerControl(type=kind, step=step).SerializeToString())

    def signal(self, sig: int, ranks: list[int] | None = None) -> None:
        for r in ranks if ranks is not None else range(self.nproc):
            if self.procs[r].poll() is None:
                self.procs[r].send_signal(sig)

    def reports(self, timeout_s: float = 0.0) -> list:
        """TrainerReports received so far (waits up to timeout_s for the first one)."""
        return _drain(self.report, trainer_pb2.TrainerReport, timeout_s)

    def metrics(self, timeout_s: float = 0.0) -> list:
        return _drain(self.telemetry, telemetry_pb2.Metric, timeout_s) if self.telemetry is not None else []

    def exit_codes(self) -> list[int | None]:
        return [p.poll() for p in self.procs]

    def wait(self, timeout_s: float) -> list[int]:
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if any(p.poll() is None for p in self.procs):
            self.signal(signal.SIGKILL)
            raise TimeoutError(f"trainers still running after {timeout_s}s; killed them")
        return [p.returncode for p in self.procs]

    def close(self) -> None:
        self.signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()
        for s in self.controls + [self.report] + ([self.telemetry] if self.telemetry else []):
            s.close(linger=0)
        del self.store
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def _drain(sock, cls, timeout_s: float) -> list:
    out = []
    if sock.poll(int(timeout_s * 1000)):
        while True:
            try:
                raw = sock.recv_multipart(zmq.NOBLOCK)[0]  # telemetry may carry a MAC frame after it
            except zmq.Again:
                break
            m = cls()
            m.ParseFromString(raw)
            out.append(m)
    return out


def pick_resume(arg: str, checkpoint_dir: str) -> str:
    """--resume auto|none|PATH -> a checkpoint path or '' (fresh). A named path must verify."""
    if arg == "none":
        log.info("starting fresh (--resume none)")
        return ""
    if arg == "auto":
        path = ckpt.latest_good(checkpoint_dir)
        log.info("resume auto: %s", f"resuming from {path}" if path else f"no good checkpoint in {checkpoint_dir}, "
                                                                        "starting fresh")
        return path or ""
    ckpt.verify(arg)  # fail before spawning anything
    return os.path.abspath(arg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker train", description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="job spec YAML (apiVersion byol/v1, kind PretrainJob), or the "
                    "resolved JSON `byolctl plan --resolved FILE` writes (its specHash is recorded in checkpoints)")
    ap.add_argument("--nproc", type=int, default=0, help="trainer processes; default spec.resources.workers")
    ap.add_argument("--checkpoint-dir", default="", help="default ./checkpoints/<metadata.name>")
    ap.add_argument("--resume", default="auto", help="auto (latest good checkpoint, else fresh) | none | PATH")
    ap.add_argument("--max-steps", type=int, default=0, help="stop (with a checkpoint) after this global step")
    ap.add_argument("--telemetry", default="", help="also send metrics to this ZeroMQ address (tcp://host:port)")
    args = ap.parse_args(argv)
    setup_logging()
    # here, not at the top: flag errors and --help answer before torch loads
    from ..data.loading import open_dataset
    from ..core.schedule_plan import plan
    from ..spec import SpecError, load_job
    try:
        resolved, spec_hash = load_job(args.spec)
        s = resolved["spec"]
        nproc = args.nproc or int(s["resources"]["workers"])
        sched = plan(resolved, nproc, len(open_dataset(s["data"], "train")))
        ckpt_dir = args.checkpoint_dir or os.path.join("checkpoints", resolved["metadata"]["name"])
        resume = pick_resume(args.resume, ckpt_dir)
    except (SpecError, ckpt.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        device = local_device_kind(s["resources"]["device"], nproc)
    except ValueError as e:
        print(f"error: spec.resources.device: {e}", file=sys.stderr)
        return 2
    log.info("job %s: K=%d steps (%d per epoch), B=%d over %d rank(s) x %d x %d accumulation, checkpoints in %s",
             resolved["metadata"]["name"], sched["totalSteps"], sched["stepsPerEpoch"], sched["globalBatch"], nproc,
             sched["microBatch"], sched["accumulation"], ckpt_dir)
    group = LocalGroup(resolved, sched, nproc, ckpt_dir, resume=resume, stop_at_step=args.max_steps,
                       telemetry_address=args.telemetry, device=device, spec_hash=spec_hash)
    return _supervise(group, s, sched["totalSteps"], args.max_steps, ckpt_dir)


def local_device_kind(want: str, nproc: int) -> str:
    """"cpu" or "cuda" for N local ranks; CUDA needs one GPU per rank (NCCL refuses two ranks on one GPU)."""
    import torch  # lazily, as main's imports: --help and flag errors answer before torch loads
    from ..core.device import resolve_device_name
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    kind = resolve_device_name(want, count).split(":")[0]
    if kind == "cuda" and nproc > count:
        raise ValueError(f"{nproc} ranks need {nproc} GPUs, this host has {count}; use --nproc {count} or device: cpu")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"{want!r}: the standalone launcher runs cpu and cuda ranks")
    return kind


def _supervise(group: LocalGroup, s: dict, total: int, max_steps: int, ckpt_dir: str) -> int:
    signals = {"n": 0}

    def relay(signum, _frame):
        signals["n"] += 1
        if signals["n"] == 1:
            log.warning("%s: asking the trainers to checkpoint and stop (again to kill them)",
                        signal.Signals(signum).name)
            group.signal(signal.SIGTERM)
        else:
            group.signal(signal.SIGKILL)
    old = {sig: signal.signal(sig, relay) for sig in (signal.SIGINT, signal.SIGTERM)}
    knn, baselines, last_log = None, {}, 0.0
    try:
        while any(c is None for c in group.exit_codes()):
            for r in group.reports(timeout_s=0.5):
                if r.HasField("checkpoint"):
                    c = r.checkpoint
                    log.info("checkpoint step %d %s", c.step, f"saved: {c.path}" if c.ok else f"FAILED: {c.error}")
                    if c.ok:
                        ckpt.prune(ckpt_dir, int(s["checkpoint"]["keepLast"]), int(s["checkpoint"]["keepEvery"]))
                elif r.HasField("event"):
                    log.info("trainer: %s", r.event.message)
            for m in group.metrics():
                if "knn_top1" in m.extra:
                    knn = m.extra["knn_top1"]
                baselines.update({k: v for k, v in m.extra.items() if k.startswith("knn_top1_")})
                if m.rank == 0 and time.monotonic() - last_log > 5:
                    last_log = time.monotonic()
                    log.info("step %d/%d epoch %.2f loss %.4f %.1f img/s", m.step + 1, total, m.epoch, m.loss,
                             m.images_per_sec * group.nproc)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    for m in group.metrics(timeout_s=0.2):
        knn = m.extra["knn_top1"] if "knn_top1" in m.extra else knn
    codes = group.exit_codes()
    group.close()
    code = next((c for c in codes if c not in (0, 75)), 75 if 75 in codes else 0)
    code = code if code >= 0 else 1  # killed by a signal
    if knn is not None:
        log.info("final kNN top-1 accuracy: %.4f (before training, the same kNN: %s)", knn,
                 ", ".join(f"{k.removeprefix('knn_top1_')} {v:.4f}" for k, v in baselines.items()) or "not measured")
        print(f"knn_top1 {knn:.4f}")
        for k, v in sorted(baselines.items()):
            print(f"{k} {v:.4f}")
    if code == 75 and max_steps and signals["n"] == 0:
        log.info("stopped at --max-steps %d with a checkpoint; continue with --resume auto", max_steps)
        return 0
    log.info("trainers exited %s -> %d", codes, code)
    return code
