"""One trainer rank: `python -m byol_worker trainer --assignment FILE` (docs/internals.md).

The agent (or `launch_local`) writes the assignment file and hosts the rendezvous store; this process joins
the generation's process group, resumes from the assigned checkpoint, and runs global optimizer steps
k = resumed step .. K-1 (or up to stop_at_step). It never waits on the coordinator: telemetry is a
non-blocking ZeroMQ push, control is polled without blocking, checkpoints are written in the background.

Exit codes: 0 all K steps done; 75 stopped on request after a verified checkpoint; 2 bad input (spec,
data, checkpoint, assignment) with the reason as the last stderr line; anything else = failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from dataclasses import dataclass, field

from google.protobuf import json_format

from .control import Assignment, AssignmentError, read_assignment, schedule_from_plan
from .logging_setup import setup_logging
from ..proto import agent_pb2

log = logging.getLogger("byol.trainer")

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PREEMPTED = 0, 2, 1, 75


class BadInput(Exception):
    """Bad spec, data, checkpoint or assignment: exit 2 with this message as stderr's last line."""


@dataclass
class RunResult:
    """What a run did; `train_in_process` returns it, `main` turns it into an exit code."""
    exit_code: int
    step: int                                   # global steps completed
    losses: dict[int, float] = field(default_factory=dict)   # k -> this rank's loss
    z_std: dict[int, float] = field(default_factory=dict)    # k -> collapse monitor (0 = collapsed)
    knn_top1: float | None = None
    baselines: dict = field(default_factory=dict)            # knn_top1_random_init, knn_top1_raw_pixels
    checkpoints: list = field(default_factory=list)          # checkpoint.SaveResult of this rank's saves
    message: str = ""


class StopFlag:
    """Raised by SIGTERM/SIGINT; read at each step boundary and folded into the stop agreement."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        def handler(signum, _frame):
            if not self.requested:
                log.info("received %s: stopping at the next step boundary after a checkpoint",
                         signal.Signals(signum).name)
            self.requested = True
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker trainer",
                                 description="Run one trainer rank from an assignment file written by an agent.")
    ap.add_argument("--assignment", required=True, help="assignment JSON (see docs/internals.md)")
    args = ap.parse_args(argv)
    code = _main(args.assignment)
    # Leave without interpreter teardown: C++ threads of gloo/libzmq that outlive it sometimes abort the
    # process ("terminate called without an active exception", SIGABRT) after a clean finish.
    import zmq
    zmq.Context.instance().destroy(linger=1000)  # lets the last reports out, at most 1 s
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(assignment: str) -> int:
    setup_logging()
    stop = StopFlag()
    stop.install()
    try:
        a = read_assignment(assignment)
        setup_logging(rank=a.proto.rank)
        res = run(a, stop)
    except (BadInput, AssignmentError) as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    if res.exit_code not in (EXIT_OK, EXIT_PREEMPTED):
        print(f"error: {res.message}", file=sys.stderr, flush=True)
    return res.exit_code


def train_in_process(resolved_spec: dict, *, checkpoint_dir: str, resume: str = "", stop_at_step: int = 0,
                     telemetry_address: str = "", job_id: str = "local", stop: StopFlag | None = None) -> RunResult:
    """One rank, no subprocess and no process group (tests, notebooks). Raises BadInput on bad input."""
    from ..data.loading import open_dataset
    from ..spec import plan
    try:
        n = len(open_dataset(resolved_spec["spec"]["data"], "train"))
        p = plan(resolved_spec, 1, n)
    except ValueError as e:  # SpecError and DataError are ValueErrors
        raise BadInput(str(e)) from e
    proto = agent_pb2.Assignment(job_id=job_id, generation=1, rank=0, world_size=1,
                                 spec_json=json.dumps(resolved_spec), schedule=schedule_from_plan(p),
                                 resume_checkpoint=resume, checkpoint_dir=checkpoint_dir,
                                 telemetry_address=telemetry_address, stop_at_step=stop_at_step)
    return run(Assignment(proto), stop or StopFlag())


def aug_seed(seed: int, step: int, view: int) -> int:
    """Seed of the CPU generator that draws view `view`'s augmentation of global step `step`."""
    import numpy as np
    return int(np.random.SeedSequence((seed, step, view)).generate_state(1, np.uint64)[0] >> 1)


def view_params(augs, seed: int, step: int, lo: int, hi: int, global_batch: int, device):
    """Parameters of positions [lo, hi) of the global batch, drawn for all B so they do not depend on W."""
    import torch
    out = []
    for v, aug in enumerate(augs, start=1):
        gen = torch.Generator().manual_seed(aug_seed(seed, step, v))
        out.append(aug.sample(global_batch, gen).slice(lo, hi).to(device))
    return out


def _rng_state(device) -> dict:
    import torch
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


class _Run:
    """The state of one rank's run; `run()` below drives it."""

    def __init__(self, a: Assignment, stop: StopFlag) -> None:
        import torch
        from .async_save import AsyncSaver
        from .control import ControlChannel, Reporter
        from ..data.loading import BatchLoader, open_dataset
        from .distributed import convert_sync_batchnorm, init_group, pick_device, set_threads
        from ..core.model import build_model
        from ..core.optim import build_optimizer
        from ..core.precision import resolve as resolve_precision
        from ..core.side_stream import SideStream
        from ..spec import spec_hash
        from ..core.step import TrainStep
        from .telemetry import TelemetrySender

        p, self.a, self.stop = a.proto, a, stop
        try:
            self.resolved = a.spec
        except AssignmentError as e:
            raise BadInput(str(e)) from e
        if "spec" not in self.resolved:
            raise BadInput("assignment spec_json: expected a resolved job document with a 'spec' object")
        s = self.spec = self.resolved["spec"]
        sch = self.sch = p.schedule
        self.rank, self.W = int(p.rank), int(p.world_size)
        self.K, self.B, self.b, self.acc = int(sch.total_steps), int(sch.global_batch), int(sch.micro_batch), int(sch.accumulation)
        if self.W < 1 or self.rank >= self.W or self.K < 1 or self.W * self.b * self.acc != self.B:
            raise BadInput(f"assignment: inconsistent rank {self.rank} / world_size {self.W} / schedule "
                           f"(W*b*a = {self.W}*{self.b}*{self.acc} must equal globalBatch {self.B}, K = {self.K})")
        try:
            self.device = pick_device(os.environ.get("BYOL_DEVICE") or p.device_id or s["resources"]["device"])
        except ValueError as e:
            raise BadInput(str(e)) from e
        threads = set_threads(int(s["resources"].get("threadsPerWorker", 0)), self.device, self.W)
        self.seed = int(s["train"]["seed"])
        try:
            self.ds = open_dataset(s["data"], "train")
        except ValueError as e:
            raise BadInput(str(e)) from e
        if len(self.ds) // self.B != int(sch.steps_per_epoch):
            raise BadInput(f"schedule.steps_per_epoch {sch.steps_per_epoch} does not match the data: "
                           f"{len(self.ds)} samples // globalBatch {self.B} = {len(self.ds) // self.B}")
        self.dist = init_group(p.rendezvous_address, self.rank, self.W, int(p.generation), self.device)
        self.prec = resolve_precision(s["train"]["precision"], s["train"]["channelsLast"], self.device)
        torch.manual_seed(self.seed)  # identical initial weights on every rank
        model = build_model(s["model"], int(s["data"]["imageSize"]))
        if s["train"].get("syncBatchNorm", True) and self.W > 1:
            model = convert_sync_batchnorm(model, self.device)
        self.model = self.prec.prepare_model(model.to(self.device))
        self.opt = build_optimizer(self.model, s["optimizer"])
        self.start = 0
        self.baselines: dict[str, float] = {}  # measured before the first step, kept in every checkpoint
        self.hash = spec_hash(self.resolved)
        if p.resume_checkpoint:
            self._resume(p.resume_checkpoint)
        online = self.model.online_network()
        if self.dist.initialized:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            with warnings.catch_warnings():  # broadcast_buffers=False is what we want: BN buffers stay per rank
                warnings.simplefilter("ignore", FutureWarning)
                online = DDP(online, device_ids=ids, broadcast_buffers=False)
        if s["train"].get("compile"):
            # Compiles the online forward (and its backward through AOTAutograd); the optimizer step and
            # the EMA update stay eager. The first step pays the compile time (docs/architecture.md §10).
            online = torch.compile(online)
        self.step = TrainStep(self.model, self.opt, self.prec, accumulation=self.acc, online=online,
                              cuda_graph=self._use_cuda_graph(s["train"]))
        self.augs = self._augs()
        self.side = SideStream(self.device)
        self.end = self.K
        self.stop_at = int(p.stop_at_step) if 0 < int(p.stop_at_step) < self.K else 0
        self.loader = BatchLoader(self.ds, self.B, int(sch.steps_per_epoch), self.seed, self.rank, self.W,
                                  self.start, self.end, pin_memory=self.device.type == "cuda",
                                  loader_workers=int(s["data"].get("loaderWorkers", 0)))
        self.telemetry = TelemetrySender(p.telemetry_address, job_id=p.job_id, generation=int(p.generation),
                                         rank=self.rank, world_size=self.W, key=p.telemetry_key)
        self.control = ControlChannel(a.control_address)
        self.reporter = Reporter(a.report_address, job_id=p.job_id, generation=int(p.generation), rank=self.rank)
        self.saver = AsyncSaver(on_done=self._saved)
        if self.rank == 0:
            self.saver.start()  # rank 0 writes every checkpoint, at least the last one
            self.step.before_update = self.saver.fence
        self.result = RunResult(exit_code=EXIT_FAILED, step=self.start, baselines=self.baselines)
        log.info("rank %d/%d on %s (%d threads, %s%s): steps %d..%d of K=%d, B=%d = %d ranks x %d x %d accum",
                 self.rank, self.W, self.device, threads, self.prec.name,
                 ", channels-last" if self.prec.channels_last else "", self.start, self.end, self.K, self.B,
                 self.W, self.b, self.acc)

    def _augs(self):
        from ..core.augment import ViewAugment
        aug = self.spec["augment"]
        size = int(self.spec["data"]["imageSize"])
        return [ViewAugment(aug[v], size, aug["normalize"], v, aug.get("semantics")) for v in ("view1", "view2")]

    def _resume(self, path: str) -> None:
        import torch
        from . import checkpoint as ckpt
        try:
            c = ckpt.load(path, map_location=self.device)
            self.model.load_state_dict(c["model"])
            self.opt.load_state_dict(c["optimizer"])
        except ckpt.CheckpointError as e:
            raise BadInput(f"resume_checkpoint: {e}") from e
        except (RuntimeError, KeyError, ValueError) as e:
            raise BadInput(f"resume_checkpoint {path}: does not fit this job's model/optimizer ({e})") from e
        self.start = int(c["state"]["step"])
        if self.start > self.K:
            raise BadInput(f"resume_checkpoint {path}: step {self.start} is past totalSteps {self.K}")
        if c["state"].get("spec_hash") != self.hash:
            log.warning("resuming %s written for a different spec (hash %s, now %s); weights fit, going on",
                        path, str(c["state"].get("spec_hash"))[:12], self.hash[:12])
        ranks = c["rng"].get("ranks", [])
        if c["rng"].get("world_size") == self.W and self.rank < len(ranks):
            torch.set_rng_state(ranks[self.rank]["torch"].cpu())
            if "cuda" in ranks[self.rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(ranks[self.rank]["cuda"].cpu(), self.device)
        self.baselines.update(c["state"].get("baselines", {}))
        log.info("resumed from %s at step %d", path, self.start)


    # ------------------------------------------------------------------ checkpoints

    def _saved(self, res) -> None:
        """Writer-thread callback: report to the agent, log what a user can do about a failure."""
        self.result.checkpoints.append(res)
        if res.ok:
            log.info("checkpoint step %d saved: %s (%d bytes, %.2fs in the background)",
                     res.step, res.path, res.bytes, res.seconds)
        else:
            log.error("checkpoint step %d FAILED, training goes on with older checkpoints kept: %s "
                      "(free disk space or fix permissions on %s)", res.step, res.error, self.a.proto.checkpoint_dir)
        self.reporter.checkpoint(res.step, res.ok, res.path, res.bytes, res.sha256, res.error)

    def checkpoint(self, done: int, wait: bool) -> bool:
        """All ranks call this at the same boundary: gather RNG states to rank 0, which snapshots and
        saves. With wait, every rank learns whether rank 0's write succeeded."""
        import torch
        import torch.distributed as dist
        from . import checkpoint as ckpt
        rng = _rng_state(self.device)
        states = [None] * self.W if self.rank == 0 else None
        if self.dist.initialized:
            dist.gather_object(rng, states, dst=0)
        else:
            states = [rng]
        ok = True
        if self.rank == 0:
            state = {"step": done, "epoch": done / int(self.sch.steps_per_epoch), "world_size": self.W,
                     "spec_hash": self.hash, "job_id": self.a.proto.job_id, "generation": int(self.a.proto.generation),
                     "schedule": json_format.MessageToDict(self.sch, preserving_proto_field_name=True),
                     "baselines": dict(self.baselines)}
            snap = ckpt.Snapshot(done, self.model.state_dict(), self.opt.state_dict(),
                                 {"world_size": self.W, "ranks": states}, state, self.resolved)
            # parameters and optimizer state are copied while the next step's forward and backward run
            self.saver.save(snap, self.a.proto.checkpoint_dir, stable=self.step.update_only_tensors())
            if wait:
                res = self.saver.wait()
                ok = bool(res and res.ok and res.step == done)
        if wait and self.dist.initialized:
            flag = torch.tensor([0 if ok else 1], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            ok = int(flag.item()) == 0
        return ok

    def _use_cuda_graph(self, train: dict) -> bool:
        """train.cudaGraphs: auto = wherever the step can be captured (cuda_graph.py), true = required."""
        want = train.get("cudaGraphs", "auto")
        can = (self.device.type == "cuda" and not self.dist.initialized and self.acc == 1
               and not train.get("compile"))
        if want is True and not can:
            raise BadInput("spec.train.cudaGraphs: true needs a CUDA device, one worker, no accumulation "
                           "(microBatch 0 or globalBatch) and compile false; set it to auto or false")
        return can and want is not False

    # ------------------------------------------------------------------ the loop

    def loop(self) -> RunResult:
        import time
        from .distributed import agree
        from ..core.schedules import lr_at, tau_at
        r, spe = self.result, int(self.sch.steps_per_epoch)
        lo, hi = self.rank * self.b * self.acc, (self.rank + 1) * self.b * self.acc
        every = int(self.spec["checkpoint"].get("everySteps", 0) or 0)
        knn_cfg = self.spec["eval"]["knn"]
        knn_on = bool(knn_cfg.get("enabled", True))
        knn_every = round(float(knn_cfg.get("everyEpochs", 0)) * spe)
        done = self.start
        stopping = False
        if self.rank == 0 and knn_on and knn_cfg.get("baselines", False) and not self.baselines:
            self._measure_baselines()
        pending = None  # the last step queued, recorded once the next one is queued (see StepResult)
        t_prev = time.perf_counter()
        for k, x, _labels in self.loader:
            t_data = time.perf_counter() - t_prev
            with self.side.work():  # beside the step queued last (side_stream.py)
                x = x.to(self.device, non_blocking=True)
                p1, p2 = view_params(self.augs, self.seed, k, lo, hi, self.B, self.device)
                v1, v2 = self.augs[0].apply(x, p1), self.augs[1].apply(x, p2)
            self.side.hand_over(v1, v2)
            micro = [(v1[i * self.b:(i + 1) * self.b], v2[i * self.b:(i + 1) * self.b]) for i in range(self.acc)]
            lr, tau = lr_at(k, self.K, int(self.sch.warmup_steps), float(self.sch.peak_lr)), tau_at(k, self.K, float(self.sch.tau_base), self.sch.tau_schedule)
            out = self.step.run(micro, lr, tau)
            if pending is not None:
                self._record(*pending)
            done = r.step = k + 1
            extra = dict(self.baselines) if done == self.start + 1 else {}
            if self.rank == 0 and knn_on and ((knn_every and done % knn_every == 0) or done == self.end):
                r.knn_top1 = self._knn()
                if r.knn_top1 is not None:
                    extra["knn_top1"] = r.knn_top1
            pending = (k, out, lr, tau, time.perf_counter() - t_prev, t_data, extra)
            self.reporter.progress(done, done / spe)
            ctl = self.control.poll()
            if ctl.abort:
                self._record(*pending)
                r.message = "aborted by the agent"
                return r
            stop_now, stop_at, ckpt_now = agree(self.dist, self.stop.requested or ctl.stop_now,
                                                max(self.stop_at, ctl.stop_at_step), ctl.checkpoint_now, self.device)
            ctl.checkpoint_now = False
            self.stop_at = stop_at
            if stop_now or (stop_at and done >= stop_at):
                stopping = True
                break
            if done < self.end and (ckpt_now or (every and done % every == 0)):
                # send step k's metrics before a checkpoint that includes it: resumed from it, k never runs again
                self._record(*pending)
                pending = None
                self.checkpoint(done, wait=False)
            t_prev = time.perf_counter()
        if pending is not None:
            self._record(*pending)
        self.loader.close()
        return self._finish(done, stopping)

    def _record(self, k: int, out, lr: float, tau: float, dt: float, t_data: float, extra: dict) -> None:
        """Step k's loss and z_std into the result, the telemetry and the log (they wait for the step to end)."""
        r, spe, log_every = self.result, int(self.sch.steps_per_epoch), int(self.spec["train"].get("logEverySteps", 10))
        r.losses[k], r.z_std[k] = out["loss"], out["z_std"]
        self.telemetry.send(step=k, loss=out["loss"], tau=tau, lr=lr, step_time_s=dt, data_time_s=t_data,
                            images_per_sec=self.b * self.acc / max(dt, 1e-9), epoch=(k + 1) / spe,
                            extra={"z_std": out["z_std"], **extra})
        if self.rank == 0 and ((k + 1) % log_every == 0 or k == self.start):
            log.info("step %d/%d loss %.4f z_std %.4f lr %.4g tau %.6f %.1f img/s (data %.0f%%)", k + 1, self.K,
                     out["loss"], out["z_std"], lr, tau, self.B / max(dt, 1e-9), 100 * t_data / max(dt, 1e-9))

    def _finish(self, done: int, stopping: bool) -> RunResult:
        r = self.result
        if not stopping and self.stop.requested:
            stopping = done < self.K
        ok = self.checkpoint(done, wait=True)
        results = ({"knn_top1": r.knn_top1, **self.baselines}
                   if r.knn_top1 is not None and done == self.K and self.rank == 0 else None)
        self.reporter.progress(done, done / int(self.sch.steps_per_epoch), force=True, results=results)
        if not ok:
            r.exit_code = EXIT_FAILED
            r.message = (f"stopped at step {done} but its checkpoint could not be written (see the log); "
                         f"the job restarts from the last good checkpoint in {self.a.proto.checkpoint_dir}")
        elif stopping:
            r.exit_code, r.message = EXIT_PREEMPTED, f"stopped at step {done} after a checkpoint"
        else:
            r.exit_code, r.message = EXIT_OK, f"finished {done} steps"
            if self.rank == 0 and r.knn_top1 is not None:
                self.reporter.event("info", f"training finished at step {done}: knn_top1={r.knn_top1:.4f}")
        log.info("%s (exit %d)", r.message, r.exit_code)
        return r

    def _knn(self) -> float | None:
        from ..evaluate.knn import knn_monitor
        try:
            with self.prec.autocast():
                res = knn_monitor(self.model.online_encoder, self.resolved, device=self.device)
        except Exception as e:  # the monitor must never cost the run
            log.error("kNN monitor failed, training goes on: %s", e)
            return None
        log.info("kNN monitor: top-1 %.4f (bank %d, queries %d, %.1fs)", res["top1"], res["bank"], res["queries"],
                 res["seconds"])
        return float(res["top1"])

    def _measure_baselines(self) -> None:
        """kNN of the untrained encoder and of raw pixels, so the final kNN can be read against them."""
        from ..evaluate.knn import knn_baselines
        try:
            with self.prec.autocast():
                self.baselines.update(knn_baselines(self.model.online_encoder, self.resolved, device=self.device))
        except Exception as e:  # the monitor must never cost the run
            log.error("kNN baselines failed, training goes on: %s", e)
            return
        log.info("kNN baselines before training: random init %.4f, raw pixels %.4f",
                 self.baselines["knn_top1_random_init"], self.baselines["knn_top1_raw_pixels"])

    def close(self) -> None:
        from .distributed import teardown
        self.saver.close()
        self.loader.close()
        for c in (self.telemetry, self.control, self.reporter):
            c.close()
        teardown(self.dist)


def run(a: Assignment, stop: StopFlag) -> RunResult:
    """Set up, loop, tear down; bad input raises BadInput before any step runs."""
    r = _Run(a, stop)
    try:
        return r.loop()
    finally:
        r.close()
