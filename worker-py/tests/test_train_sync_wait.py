"""sync_wait.py with 2 real gloo processes: a rank that is slow before its backward makes the other wait in the
gradient all-reduce; the measurement puts that wait on the fast rank and about none on the slow one."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

SLEEP_S = 0.3
STEPS = 4


def _rank(rank: int, init: str, out) -> None:
    from byol_worker.train import sync_wait
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = DDP(torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)))
        rec = sync_wait.attach(model, torch.device("cpu"))
        waits = []
        for _ in range(STEPS):
            loss = model(torch.randn(16, 32)).square().mean()
            if rank == 1:
                import time
                time.sleep(SLEEP_S)  # a compute straggler: its gradients are ready late
            loss.backward()
            waits.append(rec.end_step().ms())
        with model.no_sync():  # an accumulation micro-step: no gradient sync, no wait
            model(torch.randn(16, 32)).sum().backward()
        waits.append(rec.end_step().ms())
        out.put((rank, waits))
    finally:
        dist.destroy_process_group()


def test_the_fast_rank_waits_for_the_slow_one(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    init = f"file://{os.path.join(tmp_path, 'store')}"
    procs = [ctx.Process(target=_rank, args=(r, init, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    fast, slow = got[0][:STEPS], got[1][:STEPS]
    # step 0 includes the group's first-use set-up on both sides: judge the later steps
    for w in fast[1:]:
        assert 0.5 * SLEEP_S * 1000 < w < 3 * SLEEP_S * 1000, fast
    for w in slow[1:]:
        assert w < 0.3 * SLEEP_S * 1000, slow
    assert got[0][STEPS] == 0.0 and got[1][STEPS] == 0.0  # no_sync: nothing measured


def test_one_rank_without_ddp_waits_nothing():
    from byol_worker.train.sync_wait import SyncWaitRecorder
    rec = SyncWaitRecorder()
    torch.nn.Linear(4, 2)(torch.randn(3, 4)).sum().backward()
    assert rec.end_step().ms() == 0.0
