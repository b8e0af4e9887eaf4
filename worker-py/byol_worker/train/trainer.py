"""One trainer rank: `python -m byol_worker trainer --assignment FILE` (docs/internals.md).

The agent (or `launch_local`) writes the assignment file and hosts the rendezvous store; this process joins
the generation's process group, resumes from the assigned checkpoint, and runs global optimizer steps
k = resumed step .. K-1 (or up to stop_at_step). It never waits on the coordinator: telemetry is a
non-blocking ZeroMQ push, control is polled without blocking, checkpoints are written in the background.

Exit codes: 0 all K steps done; 75 stopped on request after a verified checkpoint; 2 bad input (spec,
data, checkpoint, assignment) with the reason as the last stderr line; anything else = failed.

Reading order: `run` (set-up, loop, tear-down) and `loop` here; the set-up is rank_setup.py, checkpoints and
resume resume.py, exit codes and the result outcome.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np
import torch

from ..core.schedule_plan import plan
from ..core.schedules import lr_at, tau_at
from ..data.loading import open_dataset
from ..evaluate.knn import knn_baselines, knn_monitor
from ..optional import zmq
from ..proto import agent_pb2
from .control import Assignment, AssignmentError, from_proto, read_assignment, schedule_from_plan
from .distributed import agree
from .logging_setup import setup_logging
from .outcome import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED, BadInput, RunResult, StopFlag
from .rank_setup import Rank, set_up
from .sync_wait import RECORDER, StepWait

log = logging.getLogger("byol.trainer")


def run(a: Assignment, stop: StopFlag) -> RunResult:
    """Set up, loop, tear down; bad input raises BadInput before any step runs."""
    r = set_up(a)
    try:
        return loop(r, stop)
    finally:
        r.close()


def loop(r: Rank, stop: StopFlag) -> RunResult:
    res = RunResult(exit_code=EXIT_FAILED, step=r.start, baselines=r.baselines, checkpoints=r.ckpt.saved)
    spe = r.sch.steps_per_epoch
    lo, hi = r.rank * r.b * r.acc, (r.rank + 1) * r.b * r.acc
    every = int(r.spec["checkpoint"]["everySteps"])  # the spec is resolved: defaults live in presets.json only
    knn_cfg = r.spec["eval"]["knn"]
    knn_on = bool(knn_cfg["enabled"])
    knn_every = round(float(knn_cfg["everyEpochs"]) * spe)
    done = r.start
    stopping = False
    if r.rank == 0 and knn_on and knn_cfg["baselines"] and not r.baselines:
        _measure_baselines(r)
    RECORDER.end_step()  # collectives before the first step (baselines) are no step's wait
    pending = None  # the last step queued, recorded once the next one is queued (see StepResult)
    t_prev = time.perf_counter()
    for k, x, _labels in r.loader:
        t_data = time.perf_counter() - t_prev
        with r.side.work():  # beside the step queued last (side_stream.py)
            x = x.to(r.device, non_blocking=True)
            p1, p2 = view_params(r.augs, r.seed, k, lo, hi, r.B, r.device)
            v1, v2 = r.augs[0].apply(x, p1), r.augs[1].apply(x, p2)
        r.side.hand_over(v1, v2)
        micro = [(v1[i * r.b:(i + 1) * r.b], v2[i * r.b:(i + 1) * r.b]) for i in range(r.acc)]
        lr = lr_at(k, r.K, r.sch.warmup_steps, r.sch.peak_lr)
        tau = tau_at(k, r.K, r.sch.tau_base, r.sch.tau_schedule)
        out = r.step.run(micro, lr, tau)
        waited = RECORDER.end_step()  # read with the loss, one step later (sync_wait.py)
        if pending is not None:
            _record(r, res, *pending)
        done = res.step = k + 1
        extra = dict(r.baselines) if done == r.start + 1 else {}
        if r.rank == 0 and knn_on and ((knn_every and done % knn_every == 0) or done == r.end):
            res.knn_top1 = _knn(r)
            if res.knn_top1 is not None:
                extra["knn_top1"] = res.knn_top1
        pending = (k, out, lr, tau, time.perf_counter() - t_prev, t_data, waited, extra)
        r.reporter.progress(done, done / spe)
        ctl = r.control.poll()
        if ctl.abort:
            _record(r, res, *pending)
            res.message = "aborted by the agent"
            return res
        stop_now, stop_at, ckpt_now = agree(r.dist, stop.requested or ctl.stop_now,
                                            max(r.stop_at, ctl.stop_at_step), ctl.checkpoint_now, r.device)
        ctl.checkpoint_now = False
        r.stop_at = stop_at
        if stop_now or (stop_at and done >= stop_at):
            stopping = True
            break
        if done < r.end and (ckpt_now or (every and done % every == 0)):
            # send step k's metrics before a checkpoint that includes it: resumed from it, k never runs again
            _record(r, res, *pending)
            pending = None
            r.ckpt.save(done, wait=False)
        t_prev = time.perf_counter()
    if pending is not None:
        _record(r, res, *pending)
    r.loader.close()
    return _finish(r, res, stop, done, stopping)


def aug_seed(seed: int, step: int, view: int) -> int:
    """Seed of the CPU generator that draws view `view`'s augmentation of global step `step`."""
    return int(np.random.SeedSequence((seed, step, view)).generate_state(1, np.uint64)[0] >> 1)


def view_params(augs, seed: int, step: int, lo: int, hi: int, global_batch: int, device):
    """Parameters of positions [lo, hi) of the global batch, drawn for all B so they do not depend on W."""
    out = []
    for v, aug in enumerate(augs, start=1):
        gen = torch.Generator().manual_seed(aug_seed(seed, step, v))
        out.append(aug.sample(global_batch, gen).slice(lo, hi).to(device))
    return out


def _record(r: Rank, res: RunResult, k: int, out, lr: float, tau: float, dt: float, t_data: float,
            waited: StepWait, extra: dict) -> None:
    """Step k's loss and z_std into the result, the telemetry and the log (they wait for the step to end)."""
    spe, log_every = r.sch.steps_per_epoch, int(r.spec["train"]["logEverySteps"])
    res.losses[k], res.z_std[k] = out["loss"], out["z_std"]
    r.telemetry.send(step=k, loss=out["loss"], tau=tau, lr=lr, step_time_s=dt, data_time_s=t_data,
                     sync_wait_ms=waited.ms(),
                     images_per_sec=r.b * r.acc / max(dt, 1e-9), epoch=(k + 1) / spe,
                     extra={"z_std": out["z_std"], **extra})
    if r.rank == 0 and ((k + 1) % log_every == 0 or k == r.start):
        log.info("step %d/%d loss %.4f z_std %.4f lr %.4g tau %.6f %.1f img/s (data %.0f%%)", k + 1, r.K,
                 out["loss"], out["z_std"], lr, tau, r.B / max(dt, 1e-9), 100 * t_data / max(dt, 1e-9))


def _finish(r: Rank, res: RunResult, stop: StopFlag, done: int, stopping: bool) -> RunResult:
    if not stopping and stop.requested:
        stopping = done < r.K
    ok = r.ckpt.save(done, wait=True)
    results = ({"knn_top1": res.knn_top1, **r.baselines}
               if res.knn_top1 is not None and done == r.K and r.rank == 0 else None)
    r.reporter.progress(done, done / r.sch.steps_per_epoch, force=True, results=results)
    if not ok:
        res.exit_code = EXIT_FAILED
        res.message = (f"stopped at step {done} but its checkpoint could not be written (see the log); "
                       f"the job restarts from the last good checkpoint in {r.a.checkpoint_dir}")
    elif stopping:
        res.exit_code, res.message = EXIT_PREEMPTED, f"stopped at step {done} after a checkpoint"
    else:
        res.exit_code, res.message = EXIT_OK, f"finished {done} steps"
        if r.rank == 0 and res.knn_top1 is not None:
            r.reporter.event("info", f"training finished at step {done}: knn_top1={res.knn_top1:.4f}")
    log.info("%s (exit %d)", res.message, res.exit_code)
    return res


def _knn(r: Rank) -> float | None:
    try:
        with r.prec.autocast():
            out = knn_monitor(r.model.online_encoder, r.resolved, device=r.device)
    except Exception as e:  # the monitor must never cost the run
        log.error("kNN monitor failed, training goes on: %s", e)
        return None
    log.info("kNN monitor: top-1 %.4f (bank %d, queries %d, %.1fs)", out["top1"], out["bank"], out["queries"],
             out["seconds"])
    return float(out["top1"])


def _measure_baselines(r: Rank) -> None:
    """kNN of the untrained encoder and of raw pixels, so the final kNN can be read against them."""
    try:
        with r.prec.autocast():
            r.baselines.update(knn_baselines(r.model.online_encoder, r.resolved, device=r.device))
    except Exception as e:  # the monitor must never cost the run
        log.error("kNN baselines failed, training goes on: %s", e)
        return
    log.info("kNN baselines before training: random init %.4f, raw pixels %.4f",
             r.baselines["knn_top1_random_init"], r.baselines["knn_top1_raw_pixels"])


# ---------------------------------------------------------------- entry points

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker trainer",
                                 description="Run one trainer rank from an assignment file written by an agent.")
    ap.add_argument("--assignment", required=True, help="assignment JSON (see docs/internals.md)")
    args = ap.parse_args(argv)
    code = _main(args.assignment)
    # Leave without interpreter teardown: C++ threads of gloo/libzmq that outlive it sometimes abort the
    # process ("terminate called without an active exception", SIGABRT) after a clean finish.
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
        setup_logging(rank=a.rank)
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
    try:
        n = len(open_dataset(resolved_spec["spec"]["data"], "train"))
        p = plan(resolved_spec, 1, n)
    except ValueError as e:  # SpecError and DataError are ValueErrors
        raise BadInput(str(e)) from e
    proto = agent_pb2.Assignment(job_id=job_id, generation=1, rank=0, world_size=1,
                                 spec_json=json.dumps(resolved_spec), schedule=schedule_from_plan(p),
                                 resume_checkpoint=resume, checkpoint_dir=checkpoint_dir,
                                 telemetry_address=telemetry_address, stop_at_step=stop_at_step)
    return run(from_proto(proto), stop or StopFlag())
