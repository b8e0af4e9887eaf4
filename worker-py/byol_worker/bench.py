"""BYOL worker step benchmark on synthetic uint8 images (docs/architecture.md §10).

    python -m byol_worker bench [--json] [--model resnet18-cifar|resnet50] [--batch 128] [--steps 5]

Measures (a)-(c) as the mean of `--steps` steps run back to back after `--warmup` untimed ones, with one
device sync at the end (as the trainer runs them), and (d) as the median of its steps:
  (a) full    - our step: uint8 batch to the device, batched on-device augmentation of both views (on CUDA on a
                side stream, beside the previous step),
                TrainStep (bf16 autocast + channels-last where the device supports it, LARS, EMA; on CUDA
                replayed as one CUDA graph unless --cuda-graph off);
  (b) step    - TrainStep alone on ready float views;
  (c) augment - the augmentation of both views alone;
  (d) reference - a plain BYOL step written the common way: per-sample PIL augmentations in
                DataLoader worker processes, fp32 NCHW, per-parameter Python EMA loop, same model
                and optimizer;
and the ratio (a)/(d). img/s counts source images (each gives two views).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from . import contract
from .core.augment import ViewAugment
from .core.cuda_graph import WARMUP
from .core.device import pick_device
from .core.loss import byol_loss
from .core.model import build_model
from .core.optim import build_optimizer
from .core.precision import resolve
from .core.side_stream import SideStream
from .core.step import TrainStep

MODELS = {"resnet18-cifar": (32, 32, 128), "resnet50": (224, 256, 64)}  # image size, source size, batch


def augment_defaults(model: str) -> tuple[list[dict], dict]:
    """View configs (with the preset's semantics under "semantics") and normalisation of the preset matching
    the model (contract/presets.json)."""
    presets = contract.presets()
    aug = presets["defaults"]["augment"]
    over = presets["presets"]["byol-cifar"]["augment"] if model.endswith("-cifar") else {}
    sem = {**aug["semantics"], **over.get("semantics", {})}
    views = [{**aug[v], **over.get(v, {}), "semantics": sem} for v in ("view1", "view2")]
    return views, {**aug["normalize"], **over.get("normalize", {})}


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m byol_worker bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet18-cifar")
    ap.add_argument("--batch", type=int, default=0, help="images per step (default 128 CIFAR, 64 ResNet-50)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    ap.add_argument("--cuda-graph", choices=["auto", "on", "off"], default="auto",
                    help="replay the step as one CUDA graph (auto: on CUDA, as the trainer does)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the online network, as train.compile does (no CUDA graph then, unless "
                         "--cuda-graph on: a compiled step replayed as a graph, which the trainer does not offer yet)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave torch's default)")
    ap.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers of the reference")
    ap.add_argument("--width", type=float, default=1.0, help="encoder width multiplier (tiny runs: 0.0625)")
    ap.add_argument("--hidden", type=int, default=4096, help="projector/predictor hidden size")
    ap.add_argument("--no-reference", action="store_true", help="skip (d), the slow plain reference")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = ap.parse_args(argv)
    if a.batch < 0 or a.steps < 1 or a.warmup < 0:
        ap.error("--batch must be >= 0, --steps >= 1, --warmup >= 0")
    return a


def _ms_per_step(fn, steps: int, warmup: int, sync) -> float:
    """Mean ms per step of `steps` calls back to back with one device sync at the end: the trainer never waits
    for the device between steps (it reads a step's loss after queueing the next), so neither does this."""
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t0) * 1000.0 / steps


def run(a: argparse.Namespace) -> dict:
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    size, src, default_batch = MODELS[a.model]
    B = a.batch or default_batch
    model_cfg = {"backbone": a.model, "width": a.width, "projector": {"hiddenDim": a.hidden, "outDim": 256},
                 "predictor": {"hiddenDim": a.hidden}}
    opt_cfg = {"name": "lars", "weightDecay": 1.5e-6, "momentum": 0.9, "trustCoefficient": 1e-3}
    views, normalize = augment_defaults(a.model)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    prec = resolve(a.precision, "auto", device)
    torch.manual_seed(0)
    model = prec.prepare_model(build_model(model_cfg, size).to(device))
    if a.cuda_graph == "on" and device.type != "cuda":
        raise SystemExit(f"bench: --cuda-graph on needs a CUDA device, got {device}")
    graph = a.cuda_graph == "on" or (a.cuda_graph == "auto" and device.type == "cuda" and not a.compile)
    online = torch.compile(model.online_network()) if a.compile else None  # as rank_setup does
    step = TrainStep(model, build_optimizer(model, opt_cfg), prec, cuda_graph=graph, online=online)
    augs = [ViewAugment({k: x for k, x in v.items() if k != "semantics"}, size, normalize, semantics=v["semantics"])
            for v in views]
    images = torch.randint(0, 256, (B, src, src, 3), dtype=torch.uint8)
    if device.type == "cuda":
        images = images.pin_memory()
    gen = torch.Generator().manual_seed(0)

    def augment():
        x = images.to(device, non_blocking=True)
        return [aug.apply(x, aug.sample(B, gen)) for aug in augs]

    side = SideStream(device)

    def full():  # as the trainer: this batch's augmentation beside the step queued last
        with side.work():
            v1, v2 = augment()
        side.hand_over(v1, v2)
        step.run([(v1, v2)], lr=0.1, tau=0.996)

    ready = augment()
    results = {
        # a graphed step runs its first steps eagerly, then captures (cuda_graph.py): time only replays
        "full": _ms_per_step(full, a.steps, max(a.warmup, WARMUP + 1) if graph else a.warmup, sync),
        "step": _ms_per_step(lambda: step.run([tuple(ready)], lr=0.1, tau=0.996), a.steps, a.warmup, sync),
        "augment": _ms_per_step(augment, a.steps, a.warmup, sync),
    }
    if not a.no_reference:
        results["reference"] = reference_ms(model_cfg, opt_cfg, views, normalize, size, src, B, device,
                                              a.steps, a.warmup, a.loader_workers, sync)
    out = {
        "device": str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "precision": prec.name,
        "channels_last": prec.channels_last, "cuda_graph": graph, "compile": a.compile, "model": a.model, "width": a.width, "hidden": a.hidden,
        "image_size": size, "source_size": src, "batch": B, "steps": a.steps, "warmup": a.warmup,
        "loader_workers": a.loader_workers,
        "results": {name: {"ms_per_step": round(ms, 3), "images_per_s": round(B * 1000.0 / ms, 3)}
                    for name, ms in results.items()},
    }
    if "reference" in results:
        out["full_vs_reference"] = round(results["reference"] / results["full"], 3)
    return out


class PilViews(torch.utils.data.Dataset):
    """The common way: two views per image, augmented one image at a time with PIL in loader workers
    (torchvision-style multiplicative jitter, PIL blur and solarize)."""

    def __init__(self, images: np.ndarray, views: list[dict], size: int, normalize: dict, length: int):
        self.images, self.views, self.size, self.length = images, views, size, length
        self.mean = torch.tensor(normalize["mean"]).view(3, 1, 1)
        self.std = torch.tensor(normalize["std"]).view(3, 1, 1)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        img = Image.fromarray(self.images[i % len(self.images)])
        return tuple(self._view(img, v, rng) for v in self.views)

    def _view(self, img: Image.Image, c: dict, rng: np.random.Generator) -> torch.Tensor:
        W, H = img.size
        area = rng.uniform(*c["cropScale"]) * W * H
        r = float(np.exp(rng.uniform(np.log(c["cropRatio"][0]), np.log(c["cropRatio"][1]))))
        w, h = min(W, max(1, round((area * r) ** 0.5))), min(H, max(1, round((area / r) ** 0.5)))
        x0, y0 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        img = img.crop((x0, y0, x0 + w, y0 + h)).resize((self.size, self.size), Image.BICUBIC)
        if rng.random() < c["flipProb"]:
            img = ImageOps.mirror(img)
        if rng.random() < c["jitterProb"]:
            for op in rng.permutation(4):
                if op == 0:
                    img = ImageEnhance.Brightness(img).enhance(rng.uniform(1 - c["brightness"], 1 + c["brightness"]))
                elif op == 1:
                    img = ImageEnhance.Contrast(img).enhance(rng.uniform(1 - c["contrast"], 1 + c["contrast"]))
                elif op == 2:
                    img = ImageEnhance.Color(img).enhance(rng.uniform(1 - c["saturation"], 1 + c["saturation"]))
                else:
                    hsv = np.array(img.convert("HSV"))
                    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.uniform(-c["hue"], c["hue"]) * 255)) % 256
                    img = Image.fromarray(hsv, "HSV").convert("RGB")
        if rng.random() < c["grayscaleProb"]:
            img = img.convert("L").convert("RGB")
        if rng.random() < c["blurProb"]:
            img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*c["blurSigma"])))
        if rng.random() < c["solarizeProb"]:
            img = ImageOps.solarize(img, 128)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
        return (x - self.mean) / self.std


def reference_ms(model_cfg, opt_cfg, views, normalize, size, src, B, device, steps, warmup, workers, sync):
    """(d): median ms per step of the plain fp32 reference, data waits included."""
    torch.manual_seed(0)
    model = build_model(model_cfg, size).to(device).train()
    opt = build_optimizer(model, opt_cfg)
    images = np.random.default_rng(0).integers(0, 256, (min(B, 256), src, src, 3), dtype=np.uint8)
    ds = PilViews(images, views, size, normalize, B * (steps + warmup))
    loader = torch.utils.data.DataLoader(ds, batch_size=B, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda")
    online = list(model.online_encoder.parameters()) + list(model.online_projector.parameters())
    times = []
    it = iter(loader)
    for i in range(steps + warmup):
        sync()
        t0 = time.perf_counter()
        v1, v2 = (v.to(device) for v in next(it))
        p1 = model.predictor(model.online_projector(model.online_encoder(v1)))
        p2 = model.predictor(model.online_projector(model.online_encoder(v2)))
        with torch.no_grad():
            t1, t2 = model.target_forward(v1), model.target_forward(v2)
        loss = byol_loss(p1, p2, t1, t2)
        loss.backward()
        for g in opt.param_groups:
            g["lr"] = 0.1
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            for t, o in zip(model.target_parameters(), online):
                t.mul_(0.996).add_(o, alpha=0.004)
        loss.item()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def _table(r: dict) -> str:
    lines = [f"device {r['device']}  torch {r['torch']}  threads {r['threads']}  precision {r['precision']}"
             f"{' + channels-last' if r['channels_last'] else ''}",
             f"model {r['model']} (width {r['width']}, heads {r['hidden']}/256)  {r['image_size']} px from "
             f"{r['source_size']} px  batch {r['batch']}  {r['steps']} steps after {r['warmup']}",
             f"{'measure':<12}{'ms/step':>12}{'img/s':>12}"]
    for name, v in r["results"].items():
        lines.append(f"{name:<12}{v['ms_per_step']:>12.1f}{v['images_per_s']:>12.2f}")
    if "full_vs_reference" in r:
        lines.append(f"full / reference speed-up: {r['full_vs_reference']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    a = _parse(list(sys.argv[1:] if argv is None else argv))
    r = run(a)
    print(json.dumps(r) if a.json else _table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
