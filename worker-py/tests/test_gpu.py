"""The CUDA path as shipped: `device: cuda` and `auto` in process, knn, export and bench on a GPU.

Skipped where torch sees no GPU; `bash bench/gpu.sh` runs them on a device machine (which may lack pyzmq, so
nothing here needs it). The device resolution itself is tested on every host in test_train_devices.py.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from byol_worker.core import checkpoint as ckpt
from byol_worker.train.trainer import train_in_process
from conftest import merge, resolved, tiny_doc

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _npy_folder(path, n=256, seed=0):
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", n // 2)):
        np.save(path / f"{split}_images.npy", rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8))
        np.save(path / f"{split}_labels.npy", rng.integers(0, 4, count).astype(np.int64))
    return path


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_in_process_training_on_the_gpu(tmp_path, device):
    spec = resolved(tiny_doc(spec={"resources": {"device": device}, "train": {"precision": "auto"},
                                   "eval": {"knn": {"enabled": True, "k": 5}}}))
    res = train_in_process(spec, checkpoint_dir=str(tmp_path))
    assert res.exit_code == 0, res.message
    assert res.knn_top1 is not None and sorted(res.baselines) == ["knn_top1_random_init", "knn_top1_raw_pixels"]
    assert all(np.isfinite(v) for v in res.losses.values())
    assert spec_steps(tmp_path) == res.step
    state = ckpt.load(str(tmp_path / f"step-{res.step:09d}"))  # saved from the CUDA side stream, verified
    assert all(t.device.type == "cpu" for t in state["model"].values() if isinstance(t, torch.Tensor))


def test_knn_export_and_bench_commands_on_the_gpu(tmp_path):
    data = _npy_folder(tmp_path)
    spec = resolved(tiny_doc(spec={"resources": {"device": "cuda"}}))
    assert train_in_process(spec, checkpoint_dir=str(tmp_path / "ck")).exit_code == 0
    step_dir = str(tmp_path / "ck" / f"step-{spec_steps(tmp_path / 'ck'):09d}")
    run = lambda *a: subprocess.run([sys.executable, "-m", "byol_worker", *a], capture_output=True, text=True,
                                    timeout=600)
    exp = run("export", "--checkpoint", step_dir, "--out", str(tmp_path / "enc.pt"))
    assert exp.returncode == 0, exp.stderr[-2000:]
    for device in ("cuda", "auto"):
        knn = run("knn", "--encoder", str(tmp_path / "enc.pt"), "--data", str(data), "--device", device, "--json")
        assert knn.returncode == 0, knn.stderr[-2000:]
        assert 0.0 <= json.loads(knn.stdout.strip().splitlines()[-1])["top1"] <= 1.0
    bench = run("bench", "--device", "cuda", "--model", "resnet18-cifar", "--width", "0.25", "--batch", "64",
                "--steps", "2", "--warmup", "1", "--no-reference", "--json")
    assert bench.returncode == 0, bench.stderr[-2000:]
    out = json.loads(bench.stdout.strip().splitlines()[-1])
    assert out["device"].startswith("cuda:") and out["results"]["full"]["images_per_s"] > 0


def spec_steps(folder) -> int:
    return [s for s, _ in ckpt.list_steps(str(folder))][-1]


@pytest.fixture
def exact_cuda():
    """Deterministic cuDNN algorithms and no TF32, so that two runs differ only where the code differs (TF32
    and cuDNN's atomics moved an fp32 loss by 1e-3 within 3 steps on an H200)."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = True, False, False
    yield
    cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = saved


def _step_pair(precision: str, channels_last: bool):
    """Two identical models and TrainSteps on the GPU, one replaying a CUDA graph."""
    from byol_worker.core.model import build_model
    from byol_worker.core.optim import build_optimizer
    from byol_worker.core.precision import resolve
    from byol_worker.core.step import TrainStep
    cfg = {"backbone": "resnet18-cifar", "width": 0.25, "projector": {"hiddenDim": 64, "outDim": 32},
           "predictor": {"hiddenDim": 64}}
    prec = resolve(precision, channels_last, "cuda:0")
    steps = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = prec.prepare_model(build_model(cfg).cuda())
        opt = build_optimizer(model, {"name": "lars", "weightDecay": 1e-4, "momentum": 0.9})
        steps.append(TrainStep(model, opt, prec, cuda_graph=graph))
    return steps


@pytest.mark.parametrize("precision,channels_last,tol", [("fp32", False, 1e-4), ("bf16", True, 3e-2)])
def test_cuda_graph_step_matches_the_eager_step(exact_cuda, precision, channels_last, tol):
    """Eager warm-up steps, the capture, then replays with new inputs, LR and tau: the same losses and weights
    as the eager step, and the optimizer's LR is a float again (what a checkpoint saves)."""
    from byol_worker.core.cuda_graph import WARMUP
    eager, graphed = _step_pair(precision, channels_last)
    gen = torch.Generator(device="cuda").manual_seed(1)
    for k in range(WARMUP + 4):
        v1, v2 = (torch.randn(16, 3, 32, 32, device="cuda", generator=gen) for _ in range(2))
        lr, tau = 0.1 + 0.05 * k, 0.99 - 0.01 * k
        a, b = eager.run([(v1, v2)], lr, tau), graphed.run([(v1, v2)], lr, tau)
        assert abs(a["loss"] - b["loss"]) <= tol * max(1.0, abs(a["loss"])), (k, a["loss"], b["loss"])
    assert graphed.graph.graph is not None
    assert all(isinstance(g["lr"], float) for g in graphed.optimizer.param_groups)
    for (name, pa), pb in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        if pa.is_floating_point():
            torch.testing.assert_close(pb, pa, rtol=tol, atol=tol, msg=name)


def test_cuda_graph_training_stops_resumes_and_matches_eager(exact_cuda, tmp_path):
    """train.cudaGraphs true in process, 12 steps: stopped at step 6 with a checkpoint (saved while graphs
    replay) and resumed into a new graph, it gives the losses of an eager run of the same spec."""
    doc = tiny_doc(spec={"resources": {"device": "cuda"}, "train": {"epochs": 3}})
    eager = train_in_process(resolved(merge(doc, {"spec": {"train": {"cudaGraphs": False}}})),
                             checkpoint_dir=str(tmp_path / "eager"))
    assert eager.exit_code == 0 and sorted(eager.losses) == list(range(12)), eager.message
    spec = resolved(merge(doc, {"spec": {"train": {"cudaGraphs": True}}}))
    first = train_in_process(spec, checkpoint_dir=str(tmp_path / "graph"), stop_at_step=6)
    assert first.exit_code == 75 and first.step == 6, first.message
    mid = tmp_path / "graph" / "step-000000006"
    assert all(isinstance(g["lr"], float) for g in ckpt.load(str(mid))["optimizer"]["param_groups"])
    second = train_in_process(spec, checkpoint_dir=str(tmp_path / "graph"), resume=str(mid))
    assert second.exit_code == 0 and second.step == 12, second.message
    graphed = {**first.losses, **second.losses}
    for k in range(12):
        assert abs(graphed[k] - eager.losses[k]) <= 1e-3, (k, graphed[k], eager.losses[k])
