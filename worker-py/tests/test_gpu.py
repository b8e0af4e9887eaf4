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

from byol_worker import checkpoint as ckpt
from byol_worker.trainer import train_in_process
from conftest import resolved, tiny_doc

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
