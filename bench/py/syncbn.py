"""Cost of batch norm over the global batch on CPU (gloo): 2 ranks, GlobalBatchNorm versus local BatchNorm.

    .venv/bin/python bench/py/syncbn.py [--steps 40] [--rounds 2] [--quick]

Two trainer processes with one thread each (the quickstart's layout on a 2-core machine), the quickstart's
model (quarter-width ResNet-18, 256/64 heads, 32 images of 32 px per rank, bf16 where the CPU has it), DDP
and the worker's TrainStep. In the same invocation and the same process group, rounds of `--steps` steps
with every BatchNorm synced (byol_worker.train.distributed.GlobalBatchNorm) alternate with rounds with local
BatchNorm; the figure is the ratio of their step rates. Also times one small all_gather and all_reduce
(the two ways to share per-channel statistics) on the idle group.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common import LoadWatch, log, setup_logging, write_result

BATCH = 32


def _collective_us(n: int = 300) -> dict:
    x = torch.ones(2 * 64 + 1)
    rows = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    out = {}
    for name, op in (("all_gather", lambda: dist.all_gather(rows, x)), ("all_reduce", lambda: dist.all_reduce(x))):
        for _ in range(20):
            op()
        t = time.perf_counter()
        for _ in range(n):
            op()
        out[name] = round((time.perf_counter() - t) / n * 1e6)
    return out


def _rank(rank: int, port: int, a: argparse.Namespace, results: dict) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP
    from byol_worker.train.distributed import convert_sync_batchnorm
    from byol_worker.core.model import build_model
    from byol_worker.core.optim import build_optimizer
    from byol_worker.core.precision import resolve
    from byol_worker.core.step import TrainStep
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    prec = resolve("auto", "auto", torch.device("cpu"))
    cfg = {"backbone": "resnet18-cifar", "width": a.width, "projector": {"hiddenDim": 256, "outDim": 64},
           "predictor": {"hiddenDim": 256}}

    def trainer(sync: bool) -> TrainStep:
        torch.manual_seed(0)
        model = prec.prepare_model(build_model(cfg, 32))
        if sync:
            model = convert_sync_batchnorm(model, torch.device("cpu"))
        opt = build_optimizer(model, {"name": "sgd", "momentum": 0.9, "weightDecay": 5e-4})
        return TrainStep(model, opt, prec, online=DDP(model.online_network(), broadcast_buffers=False))

    steps = {"global": trainer(True), "local": trainer(False)}
    torch.manual_seed(rank)
    views = [(torch.randn(BATCH, 3, 32, 32), torch.randn(BATCH, 3, 32, 32))]
    rates: dict = {"global": [], "local": []}
    for mode in ("global", "local"):  # warm-up
        for _ in range(3):
            steps[mode].run(views, 0.01, 0.99)
    for r in range(a.rounds):
        for mode in (("global", "local") if r % 2 == 0 else ("local", "global")):
            dist.barrier()
            t = time.perf_counter()
            for _ in range(a.steps):
                steps[mode].run(views, 0.01, 0.99)
            rates[mode].append(2 * BATCH * a.steps / (time.perf_counter() - t))  # images/s over both ranks
    lat = _collective_us()
    if rank == 0:
        results.update(rates=rates, collective_us=lat, precision=prec.name)
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="steps per round (default 40)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each mode, alternated (default 2)")
    ap.add_argument("--width", type=float, default=0.25, help="ResNet-18 width multiplier (default 0.25)")
    ap.add_argument("--quick", action="store_true", help="smoke run: seconds")
    a = ap.parse_args(argv)
    setup_logging()
    if a.quick:
        a.steps, a.rounds, a.width = 3, 1, 0.0625
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    watch = LoadWatch()
    with mp.Manager() as manager:
        shared = manager.dict()
        mp.spawn(_rank, args=(port, a, shared), nprocs=2)
        res = dict(shared)
    med = {m: statistics.median(v) for m, v in res["rates"].items()}
    out = {"ranks": 2, "threads_per_rank": 1, "batch_per_rank": BATCH, "width": a.width, "steps": a.steps,
           "rounds": a.rounds, "precision": res["precision"],
           "images_per_s": {m: [round(x, 1) for x in v] for m, v in res["rates"].items()},
           "global_bn_images_per_s_median": round(med["global"], 1),
           "local_bn_images_per_s_median": round(med["local"], 1),
           "global_over_local": round(med["global"] / med["local"], 3), "collective_us": res["collective_us"]}
    log.info("2 ranks x 1 thread: GlobalBatchNorm %.0f img/s, local BatchNorm %.0f img/s (ratio %.2f); "
             "idle all_gather %d us, all_reduce %d us", med["global"], med["local"], out["global_over_local"],
             res["collective_us"]["all_gather"], res["collective_us"]["all_reduce"])
    write_result("syncbn" + ("-quick" if a.quick else ""), out, watch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
