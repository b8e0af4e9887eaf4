"""Quality A/B matrix: kNN of encoders trained by byol's own trainer, one recipe change per cell.

    .venv/bin/python bench/py/quality_ab.py --cell base --seed 0 [--width 0.25 --epochs 6 --batch 128]
    .venv/bin/python bench/py/quality_ab.py --cell baselines          # random init and raw pixels, same kNN
    .venv/bin/python bench/py/quality_ab.py --list                    # the cells and what each changes

The base cell is lightly's CIFAR-10 benchmark recipe expressed in byol's spec (the peer that learned most per
epoch on the GPU): SGD momentum 0.9 with weight decay 5e-4 on every parameter, LR 0.06 x B/128 with a cosine
to 0 and no warmup, heads 1024/256, constant tau 0.99, torchvision augmentation semantics with bilinear
resampling, ImageNet normalisation, blur off, solarize 0/0.2. byol's loss is the sum of the two (2 - 2cos)
directions, 4x the gradient of lightly's mean of the two -cos, so with plain SGD the same steps need LR / 4 and
weight decay x 4 (docs/augmentations.md "Loss scale"). Each other cell changes one thing back to what byol's
`byol-cifar` preset did before this matrix, or to the alternative the issue names. Every run trains in process
on the CIFAR-10 subset in ../shared/data/cifar10-jpeg (20k train) and scores the ONLINE encoder with the
trainer's kNN monitor (k 200, T 0.1, the whole 20k bank and 10k queries). Results append to
bench/out/quality_ab.jsonl; BENCHMARKS.md "Quality" records them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

from common import REPO, machine, setup_logging, log

DATA = os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg")
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CIFAR = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616]}
TORCHVISION = {"crop": "rejection", "resample": "bilinear", "brightness": "multiplicative",
               "contrast": "gray-mean", "saturation": "gray-blend"}


def base_doc(width: float, epochs: float, batch: int, seed: int, precision: str) -> dict:
    """lightly's CIFAR-10 recipe in byol's spec, loss scale matched (LR / 4, weight decay x 4)."""
    return {
        "apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "quality-ab"},
        "spec": {
            "preset": "byol-cifar",
            "data": {"format": "npy", "path": DATA, "imageSize": 32, "loaderWorkers": 0},
            "model": {"backbone": "resnet18-cifar", "width": width, "projector": {"hiddenDim": 1024, "outDim": 256},
                      "predictor": {"hiddenDim": 1024}},
            "optimizer": {"name": "sgd", "baseLr": 0.06 * 2 / 4, "lrScaling": "linear", "weightDecay": 5e-4 * 4,
                          "momentum": 0.9, "excludeBiasAndNorm": False, "warmupEpochs": 0},
            "ema": {"base": 0.99, "schedule": "constant"},
            "augment": {"semantics": dict(TORCHVISION), "normalize": dict(IMAGENET)},
            "train": {"epochs": epochs, "globalBatch": batch, "precision": precision, "channelsLast": "auto",
                      "syncBatchNorm": False, "seed": seed, "logEverySteps": 50},
            "resources": {"workers": 1, "device": "auto", "threadsPerWorker": 0},
            "checkpoint": {"everySteps": 0, "keepLast": 1},
            "eval": {"knn": {"enabled": True, "everyEpochs": 0, "k": 200, "temperature": 0.1, "bankSize": 0,
                             "querySize": 0, "baselines": False}},
        },
    }


def _set(doc: dict, path: str, value) -> None:
    node = doc["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


# cell -> (what it changes, [(spec path, value)])
CELLS = {
    "base": ("lightly's CIFAR-10 recipe, loss scale matched", []),
    "loss-scale": ("lightly's nominal SGD numbers on byol's summed loss (4x the effective LR, wd / 4)",
                   [("optimizer.baseLr", 0.12), ("optimizer.weightDecay", 5e-4)]),
    "tau-cosine": ("tau 0.99 -> 1 cosine instead of constant 0.99", [("ema.schedule", "cosine")]),
    "lars": ("the byol-cifar preset's LARS (lr 1.0, eta 0.02 clipped, wd 1e-5, bias/BN excluded, warmup 10%)",
             [("optimizer", {"name": "lars", "baseLr": 1.0, "lrScaling": "none", "weightDecay": 1e-5,
                             "momentum": 0.9, "trustCoefficient": 0.02, "larsClip": True,
                             "excludeBiasAndNorm": True, "warmupEpochs": -1})]),
    "heads-4096": ("projector and predictor hidden 4096 instead of 1024",
                   [("model.projector.hiddenDim", 4096), ("model.predictor.hiddenDim", 4096)]),
    "fp32": ("fp32 instead of bf16 autocast", [("train.precision", "fp32")]),
    "cifar-norm": ("CIFAR-10 mean/std instead of ImageNet's", [("augment.normalize", CIFAR)]),
    "brightness-additive": ("brightness x + d, d in [-0.4, 0.4] (official) instead of x * f",
                            [("augment.semantics.brightness", "additive")]),
    "contrast-channel": ("contrast around each channel's mean (official) instead of the grayscale mean",
                         [("augment.semantics.contrast", "channel-mean")]),
    "saturation-hsv": ("saturation scaled in HSV (official) instead of a grey blend",
                       [("augment.semantics.saturation", "hsv")]),
    "crop-single": ("one crop draw, clipped (official) instead of torchvision's rejection sampling",
                    [("augment.semantics.crop", "single-draw")]),
    "resample-bicubic": ("bicubic resampling (official, solo-learn) instead of bilinear (lightly)",
                         [("augment.semantics.resample", "bicubic")]),
    "old-preset": ("everything byol-cifar did before: official semantics, bicubic, CIFAR norm, LARS, cosine tau, "
                   "heads 4096",
                   [("augment.semantics", {"crop": "single-draw", "resample": "bicubic", "brightness": "additive",
                                           "contrast": "channel-mean", "saturation": "hsv"}),
                    ("augment.normalize", CIFAR), ("ema.schedule", "cosine"),
                    ("model.projector.hiddenDim", 4096), ("model.predictor.hiddenDim", 4096),
                    ("optimizer", {"name": "lars", "baseLr": 1.0, "lrScaling": "none", "weightDecay": 1e-5,
                                   "momentum": 0.9, "trustCoefficient": 0.02, "larsClip": True,
                                   "excludeBiasAndNorm": True, "warmupEpochs": -1})]),
    "pil": ("per-sample PIL views on the CPU (bench.py's reference pipeline: single clipped crop, bicubic, "
            "torchvision jitter) instead of the batched on-device views", []),
    "pil-semantics": ("the batched on-device views with the PIL pipeline's semantics (pair of the 'pil' cell)",
                      [("augment.semantics", {"crop": "single-draw", "resample": "bicubic",
                                              "brightness": "multiplicative", "contrast": "gray-mean",
                                              "saturation": "gray-blend"})]),
}


def cell_doc(cell: str, a: argparse.Namespace) -> dict:
    doc = base_doc(a.width, a.epochs, a.batch, a.seed, a.precision)
    for path, value in CELLS[cell][1]:
        _set(doc, path, copy.deepcopy(value))
    doc["spec"]["resources"]["threadsPerWorker"] = a.threads  # the trainer sets its threads from the spec
    if doc["spec"]["optimizer"].get("warmupEpochs") == -1:  # "10% of the run", as the GPU harness did
        doc["spec"]["optimizer"]["warmupEpochs"] = round(a.epochs / 10, 3)
    return doc


class PilAugment:
    """The trainer's augmenter interface (sample -> slice -> to, apply) over bench.py's per-sample PIL views."""

    class _Seeds:
        def __init__(self, seeds: torch.Tensor):
            self.seeds = seeds

        def slice(self, lo: int, hi: int):
            return PilAugment._Seeds(self.seeds[lo:hi])

        def to(self, _device):
            return self

    def __init__(self, view_cfg: dict, size: int, normalize: dict):
        from byol_worker.bench import PilViews
        self.views = PilViews(np.zeros((1, size, size, 3), np.uint8), [view_cfg], size, normalize, 1)

    def sample(self, n: int, generator: torch.Generator):
        return self._Seeds(torch.randint(0, 2**62, (n,), generator=generator))

    def apply(self, x: torch.Tensor, p) -> torch.Tensor:
        from PIL import Image
        imgs = x.cpu().numpy()
        out = [self.views._view(Image.fromarray(img), self.views.views[0], np.random.default_rng(int(s)))
               for img, s in zip(imgs, p.seeds.tolist())]
        return torch.stack(out).to(x.device)


def run_cell(cell: str, a: argparse.Namespace) -> dict:
    from byol_worker.train import rank_setup, trainer
    from byol_worker.spec import resolve
    resolved = resolve(cell_doc(cell, a), check_data=True)
    s = resolved["spec"]
    if cell == "pil":
        size = int(s["data"]["imageSize"])
        rank_setup.build_augs = lambda spec: [PilAugment(s["augment"][v], size, s["augment"]["normalize"])
                                              for v in ("view1", "view2")]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="quality-ab-") as ckpt:
        res = trainer.train_in_process(resolved, checkpoint_dir=ckpt)
    losses = [res.losses[k] for k in sorted(res.losses)]
    return {"cell": cell, "changes": CELLS[cell][0], "seed": a.seed, "width": a.width, "epochs": a.epochs,
            "batch": a.batch, "steps": res.step, "exit": res.exit_code, "knn_top1": res.knn_top1,
            "loss_first": losses[0] if losses else None, "loss_last": float(np.mean(losses[-20:])) if losses else None,
            "z_std_last": res.z_std.get(max(res.z_std)) if res.z_std else None, "wall_s": round(time.time() - t0, 1)}


def run_baselines(a: argparse.Namespace) -> dict:
    from byol_worker.data.loading import open_dataset
    from byol_worker.evaluate.knn import knn_eval
    from byol_worker.core.model import build_encoder
    data = {"format": "npy", "path": DATA, "evalPath": DATA, "imageSize": 32}
    bank, query = open_dataset(data, "train"), open_dataset(data, "eval")
    out = {"cell": "baselines", "width": a.width, "seed": a.seed}
    for name, norm in (("imagenet_norm", IMAGENET), ("cifar_norm", CIFAR)):
        torch.manual_seed(a.seed)
        enc = build_encoder("resnet18-cifar", a.width)
        out[f"random_init_{name}"] = knn_eval(enc, bank, query, norm["mean"], norm["std"], 32)["top1"]
    out["raw_pixels"] = knn_eval(torch.nn.Flatten(), bank, query, CIFAR["mean"], CIFAR["std"], 32)["top1"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=sorted(CELLS) + ["baselines"])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--epochs", type=float, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads of the trainer (0 = all cores)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out", "quality_ab.jsonl"))
    a = ap.parse_args(argv)
    if a.list or not a.cell:
        for name, (what, _) in CELLS.items():
            print(f"{name:<20} {what}")
        return 0
    setup_logging()
    r = run_baselines(a) if a.cell == "baselines" else run_cell(a.cell, a)
    r.update(command=" ".join(["bench/py/quality_ab.py"] + list(sys.argv[1:] if argv is None else argv)),
             cpu=machine().get("cpu_model"), torch=torch.__version__, when=time.strftime("%Y-%m-%d %H:%M:%S"))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(r) + "\n")
    log.info("%s", json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
