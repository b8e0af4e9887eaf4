"""One rank's set-up before its first step: schedule checks, device, data, process group, precision, model
(resumed when assigned), DDP, the step, augmentation, loader and the channels to the agent and coordinator.
Bad input raises BadInput here, before any step runs."""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ..core.augment import ViewAugment
from ..core.device import pick_device
from ..core.model import build_model
from ..core.optim import build_optimizer
from ..core.precision import resolve as resolve_precision
from ..core.side_stream import SideStream
from ..core.step import TrainStep
from ..data.loading import BatchLoader, open_dataset
from .control import Assignment, ControlChannel, Reporter, Schedule
from .distributed import convert_sync_batchnorm, init_group, set_threads, teardown
from .outcome import BadInput
from . import sync_wait
from .resume import Checkpointer, restore
from .telemetry import TelemetrySender

log = logging.getLogger("byol.trainer")


@dataclass
class Rank:
    """Everything one rank's loop uses; `close()` releases it."""
    a: Assignment
    resolved: dict
    spec: dict
    sch: Schedule
    rank: int
    W: int
    K: int                       # total steps
    B: int                       # global batch
    b: int                       # micro-batch per rank
    acc: int                     # accumulation steps
    seed: int
    device: torch.device
    dist: object                 # distributed.DistState
    prec: object                 # precision.Precision
    model: torch.nn.Module
    step: TrainStep
    augs: list
    side: SideStream
    loader: BatchLoader
    telemetry: TelemetrySender
    control: ControlChannel
    reporter: Reporter
    ckpt: Checkpointer
    start: int                   # the step resumed from
    end: int
    stop_at: int
    baselines: dict              # measured before the first step, kept in every checkpoint

    def close(self) -> None:
        self.ckpt.close()
        self.loader.close()
        for c in (self.telemetry, self.control, self.reporter):
            c.close()
        teardown(self.dist)


def build_augs(spec: dict) -> list:
    aug = spec["augment"]
    size = int(spec["data"]["imageSize"])
    return [ViewAugment(aug[v], size, aug["normalize"], v, aug["semantics"]) for v in ("view1", "view2")]


def set_up(a: Assignment) -> Rank:
    resolved = a.spec
    if "spec" not in resolved:
        raise BadInput("assignment spec_json: expected a resolved job document with a 'spec' object")
    s, sch = resolved["spec"], a.schedule
    rank, W = a.rank, a.world_size
    K, B, b, acc = sch.total_steps, sch.global_batch, sch.micro_batch, sch.accumulation
    if W < 1 or rank >= W or K < 1 or W * b * acc != B:
        raise BadInput(f"assignment: inconsistent rank {rank} / world_size {W} / schedule "
                       f"(W*b*a = {W}*{b}*{acc} must equal globalBatch {B}, K = {K})")
    try:
        device = pick_device(os.environ.get("BYOL_DEVICE") or a.device_id or s["resources"]["device"])
    except ValueError as e:
        raise BadInput(str(e)) from e
    threads = set_threads(int(s["resources"]["threadsPerWorker"]), device, W)
    seed = int(s["train"]["seed"])
    try:
        ds = open_dataset(s["data"], "train")
    except ValueError as e:
        raise BadInput(str(e)) from e
    if len(ds) // B != sch.steps_per_epoch:
        raise BadInput(f"schedule.steps_per_epoch {sch.steps_per_epoch} does not match the data: "
                       f"{len(ds)} samples // globalBatch {B} = {len(ds) // B}")
    dist = init_group(a.rendezvous_address, rank, W, a.generation, device)
    prec = resolve_precision(s["train"]["precision"], s["train"]["channelsLast"], device)
    torch.manual_seed(seed)  # identical initial weights on every rank
    model = build_model(s["model"], int(s["data"]["imageSize"]))
    if s["train"]["syncBatchNorm"] and W > 1:
        model = convert_sync_batchnorm(model, device)
    model = prec.prepare_model(model.to(device))
    opt = build_optimizer(model, s["optimizer"])
    start, baselines = 0, {}
    if a.resume_checkpoint:
        start = restore(a.resume_checkpoint, model, opt, device, rank, W, K, resolved, baselines)
    online = model.online_network()
    if dist.initialized:
        ids = [device.index] if device.type == "cuda" else None
        with warnings.catch_warnings():  # broadcast_buffers=False is what we want: BN buffers stay per rank
            warnings.simplefilter("ignore", FutureWarning)
            online = DDP(online, device_ids=ids, broadcast_buffers=False)
        sync_wait.attach(online, device)  # the gradient all-reduce, timed (sync_wait.py)
    if s["train"]["compile"]:
        # Compiles the online forward (and its backward through AOTAutograd); the optimizer step and
        # the EMA update stay eager. The first step pays the compile time (docs/architecture.md §10).
        online = torch.compile(online)
    step = TrainStep(model, opt, prec, accumulation=acc, online=online,
                     cuda_graph=use_cuda_graph(s["train"], device, dist.initialized, acc))
    augs = build_augs(s)
    side = SideStream(device)
    stop_at = a.stop_at_step if 0 < a.stop_at_step < K else 0
    loader = BatchLoader(ds, B, sch.steps_per_epoch, seed, rank, W, start, K,
                         pin_memory=device.type == "cuda", loader_workers=int(s["data"]["loaderWorkers"]))
    telemetry = TelemetrySender(a.telemetry_address, job_id=a.job_id, generation=a.generation,
                                rank=rank, world_size=W, key=a.telemetry_key)
    control = ControlChannel(a.control_address)
    reporter = Reporter(a.report_address, job_id=a.job_id, generation=a.generation, rank=rank)
    ckpt = Checkpointer(assignment=a, resolved=resolved, model=model, opt=opt, step=step, device=device,
                        dist_state=dist, reporter=reporter, baselines=baselines)
    log.info("rank %d/%d on %s (%d threads, %s%s): steps %d..%d of K=%d, B=%d = %d ranks x %d x %d accum",
             rank, W, device, threads, prec.name, ", channels-last" if prec.channels_last else "", start, K, K, B,
             W, b, acc)
    return Rank(a=a, resolved=resolved, spec=s, sch=sch, rank=rank, W=W, K=K, B=B, b=b, acc=acc, seed=seed,
                device=device, dist=dist, prec=prec, model=model, step=step, augs=augs, side=side, loader=loader,
                telemetry=telemetry, control=control, reporter=reporter, ckpt=ckpt, start=start, end=K,
                stop_at=stop_at, baselines=baselines)


def use_cuda_graph(train: dict, device, distributed: bool, acc: int) -> bool:
    """train.cudaGraphs: auto = wherever the step can be captured (cuda_graph.py), true = required."""
    want = train.get("cudaGraphs", "auto")
    can = device.type == "cuda" and not distributed and acc == 1 and not train.get("compile")
    if want is True and not can:
        raise BadInput("spec.train.cudaGraphs: true needs a CUDA device, one worker, no accumulation "
                       "(microBatch 0 or globalBatch) and compile false; set it to auto or false")
    return can and want is not False
