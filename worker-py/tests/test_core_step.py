"""TrainStep: accumulation, one EMA update per optimizer step, DDP with gloo (2 real processes)."""
import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from byol_worker.core.loss import byol_loss
from byol_worker.core.model import build_model
from byol_worker.core.optim import build_optimizer
from byol_worker.core.precision import resolve
from byol_worker.core.step import TrainStep

torch.set_num_threads(1)
CFG = {"backbone": "resnet18-cifar", "width": 0.0625, "projector": {"hiddenDim": 32, "outDim": 16},
       "predictor": {"hiddenDim": 32}}
SGD = {"name": "sgd", "weightDecay": 0.0, "momentum": 0.0}


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model(CFG, 16)


def _views(n_micro, b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, 3, 16, 16, generator=g), torch.randn(b, 3, 16, 16, generator=g)) for _ in range(n_micro)]


def test_accumulated_step_matches_manual_gradient_and_single_ema():
    model = _model()
    ref = copy.deepcopy(model)
    mbs = _views(3, 4)
    step = TrainStep(model, build_optimizer(model, SGD), resolve("fp32", False, "cpu"), accumulation=3)
    out = step.run(mbs, lr=0.5, tau=0.9)
    assert set(out) == {"loss", "z_std"} and isinstance(out["loss"], float) and 0 < out["loss"] < 8
    assert 0 < out["z_std"] < 1
    # manual: mean of the micro-batch losses, one SGD step, then ONE EMA update with tau
    ref.train()
    net = ref.online_network()
    total, losses = 0.0, []
    for v1, v2 in mbs:
        p1, p2, _, _ = net(v1, v2)
        with torch.no_grad():
            t1, t2 = ref.target_forward(v1), ref.target_forward(v2)
        loss = byol_loss(p1, p2, t1, t2)
        (loss / 3).backward()
        losses.append(loss.item())
    assert out["loss"] == pytest.approx(sum(losses) / 3, rel=1e-5)
    with torch.no_grad():
        for p in ref.online_parameters():
            p -= 0.5 * p.grad
        for t, o in zip(ref.target_parameters(), list(ref.online_encoder.parameters())
                        + list(ref.online_projector.parameters())):
            t.mul_(0.9).add_(0.1 * o)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in model.online_parameters())  # zero_grad(set_to_none)


def test_micro_batch_count_must_match():
    model = _model()
    step = TrainStep(model, build_optimizer(model, SGD), resolve("fp32", False, "cpu"), accumulation=2)
    with pytest.raises(ValueError, match="expected 2 micro-batches"):
        step.run(_views(1, 2), lr=0.1, tau=0.99)


def test_bf16_channels_last_step_runs_and_learns():
    model = _model()
    prec = resolve("bf16", True, "cpu")
    prec.prepare_model(model)
    opt = build_optimizer(model, {"name": "lars", "weightDecay": 1e-5, "momentum": 0.9, "trustCoefficient": 0.02,
                                  "larsClip": True, "excludeBiasAndNorm": True})
    step = TrainStep(model, opt, prec)
    mbs = _views(1, 8)
    first = step.run(mbs, lr=1.0, tau=0.99)["loss"]
    for _ in range(4):
        last = step.run(mbs, lr=1.0, tau=0.99)["loss"]
    assert last < first  # same batch each time: the online net learns to predict the target


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = _model()
        online = DDP(model.online_network(), broadcast_buffers=False)
        step = TrainStep(model, build_optimizer(model, SGD), resolve("fp32", False, "cpu"), accumulation=2,
                         online=online)
        mbs = _views(4, 4)[rank * 2:(rank + 1) * 2]
        step.run(mbs, lr=0.5, tau=0.9)
        torch.save({k: v for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_ranks_match_single_process_accumulation(tmp_path):
    mp.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    model = _model()
    TrainStep(model, build_optimizer(model, SGD), resolve("fp32", False, "cpu"), accumulation=4).run(
        _views(4, 4), lr=0.5, tau=0.9)
    single = model.state_dict()
    for k in r0:
        torch.testing.assert_close(r0[k], r1[k], atol=0, rtol=0)  # ranks agree bit for bit
        torch.testing.assert_close(r0[k], single[k], atol=1e-5, rtol=1e-4)  # W*a micro-batches = one step
