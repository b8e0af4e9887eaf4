"""Evaluation of a BYOL encoder: the kNN monitor (docs/algorithm.md §7, lightly's protocol), and the `knn` CLI,
which also runs the linear probe (probe.py) on the same features.

kNN: L2-normalised features of the ONLINE encoder in eval mode; bank = train split, queries = eval split;
cosine similarity, the top k (200) neighbours vote with weight exp(sim / T) (T = 0.1), class scores are
summed, the prediction is the argmax. Evaluation images get no augmentation, only normalisation.

    python -m byol_worker knn --encoder encoder.pt --data ../shared/data/cifar10-jpeg --json
    python -m byol_worker knn --random-init --backbone resnet18-cifar --data DIR   # untrained baseline
    python -m byol_worker knn --raw-pixels --image-size 32 --preset byol-cifar --data DIR   # pixel baseline
    python -m byol_worker knn --encoder CKPT_DIR/step-000000500 --data DIR --linear-probe
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
import torch.nn.functional as F

from ..contract import presets
from ..core.device import pick_device
from ..core.model import build_encoder
from ..data import loading as data_mod
from ..spec import SpecError
from . import export
from .probe import linear_probe

log = logging.getLogger("byol.evaluate")


def to_input(x: torch.Tensor, mean, std, image_size: int, device) -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW on device, resized (bilinear) when the size differs."""
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, device=device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def extract_features(encoder: torch.nn.Module, dataset, indices, mean, std, image_size: int,
                     device="cpu", batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features (float32, on device) and labels of `indices`, encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    feats, labels = [], []
    try:
        for i in range(0, len(indices), batch_size):
            x, y = dataset.get_batch(indices[i:i + batch_size])
            f = encoder(to_input(x, mean, std, image_size, device)).float()
            feats.append(F.normalize(f, dim=1))
            labels.append(y.to(device))
    finally:
        encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted kNN on L2-normalised features: top-k cosine neighbours vote exp(sim/T); argmax of the sums."""
    k = min(k, bank.shape[0])
    preds = []
    for i in range(0, queries.shape[0], chunk):
        sim = queries[i:i + chunk] @ bank.T                       # (q, n) cosine similarity
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(sim.shape[0], num_classes, device=sim.device, dtype=weights.dtype)
        scores.scatter_add_(1, bank_labels[top_idx], weights)
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds)


def capped_indices(n: int, cap: int, seed: int = 0) -> np.ndarray:
    """All of 0..n-1, or a fixed random subset of `cap` (sorted, for sequential reads) when 0 < cap < n."""
    if cap <= 0 or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def eval_features(encoder, bank_ds, query_ds, mean, std, image_size: int, bank_size: int = 0, query_size: int = 0,
                  device="cpu", batch_size: int = 256) -> tuple[torch.Tensor, ...]:
    """(bank, bank labels, queries, query labels): the features of the capped bank and query splits."""
    bank = extract_features(encoder, bank_ds, capped_indices(len(bank_ds), bank_size), mean, std, image_size, device,
                            batch_size)
    queries = extract_features(encoder, query_ds, capped_indices(len(query_ds), query_size), mean, std, image_size,
                               device, batch_size)
    return (*bank, *queries)


def num_classes(bank_y: torch.Tensor, q_y: torch.Tensor) -> int:
    return int(max(bank_y.max(), q_y.max())) + 1


def knn_score(bank, bank_y, q, q_y, k: int = 200, temperature: float = 0.1) -> dict:
    """kNN top-1 of the queries against the bank; returns {top1, bank, queries, k, temperature}."""
    with torch.autocast(bank.device.type, enabled=False):  # similarities in fp32 even inside bf16 autocast
        pred = knn_predict(bank, bank_y, q, num_classes(bank_y, q_y), k, temperature)
    top1 = (pred == q_y).float().mean().item()
    log.debug("kNN: %d queries against a bank of %d, k=%d, T=%g: top-1 %.4f", len(q), len(bank), k, temperature, top1)
    return {"top1": top1, "bank": len(bank), "queries": len(q), "k": k, "temperature": temperature}


def knn_eval(encoder, bank_ds, query_ds, mean, std, image_size: int, k: int = 200, temperature: float = 0.1,
             bank_size: int = 0, query_size: int = 0, device="cpu", batch_size: int = 256) -> dict:
    """Run the kNN monitor; returns {top1, bank, queries, k, temperature, seconds}."""
    t0 = time.monotonic()
    feats = eval_features(encoder, bank_ds, query_ds, mean, std, image_size, bank_size, query_size, device, batch_size)
    return {**knn_score(*feats, k, temperature), "seconds": round(time.monotonic() - t0, 3)}


def knn_monitor(encoder, resolved: dict, device="cpu", batch_size: int = 256, datasets=None) -> dict:
    """The job's kNN monitor from a resolved spec (spec.eval.knn, spec.data, spec.augment.normalize).
    `datasets` = (bank, queries) already opened, else they are opened from spec.data."""
    s = resolved["spec"]
    knn, norm = s["eval"]["knn"], s["augment"]["normalize"]
    bank_ds, query_ds = datasets or (data_mod.open_dataset(s["data"], "train"), data_mod.open_dataset(s["data"], "eval"))
    return knn_eval(encoder, bank_ds, query_ds, norm["mean"], norm["std"], int(s["data"]["imageSize"]),
                    knn["k"], knn["temperature"], knn["bankSize"], knn["querySize"], device, batch_size)


def knn_baselines(encoder, resolved: dict, device="cpu", batch_size: int = 256) -> dict:
    """What training is measured against, with the job's own kNN: the encoder as it is now (call it before the
    first step: random init) and the raw pixels (normalised, flattened). Keys: knn_top1_random_init,
    knn_top1_raw_pixels."""
    s = resolved["spec"]
    datasets = (data_mod.open_dataset(s["data"], "train"), data_mod.open_dataset(s["data"], "eval"))  # once for both
    return {"knn_top1_random_init": knn_monitor(encoder, resolved, device, batch_size, datasets)["top1"],
            "knn_top1_raw_pixels": knn_monitor(torch.nn.Flatten(), resolved, device, batch_size, datasets)["top1"]}


# ---------------------------------------------------------------- CLI

def load_encoder(path: str | None, backbone: str | None, width: float | None, image_size: int | None,
                 random_init: bool = False, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """An online encoder from an exported file (with its .json sidecar) or a checkpoint folder, or a random one.

    Returns (encoder, info) with info = {backbone, width, imageSize, normalize?, step?, source}.
    """
    info: dict = {}
    state = None
    if random_init:
        info["source"] = "random-init"
    elif path is None:
        raise SpecError([("--encoder", "give an exported encoder file or a checkpoint folder, or --random-init")])
    elif os.path.isdir(path):
        state, info = export.encoder_from_checkpoint(path)
    else:
        state, info = export.read_export(path)
    backbone = backbone or info.get("backbone")
    if backbone is None:
        raise SpecError([("--backbone", f"not given and no sidecar names it for {path}")])
    info.update(backbone=backbone, width=width or info.get("width", 1.0),
                imageSize=image_size or info.get("imageSize") or (32 if backbone.endswith("-cifar") else 224))
    torch.manual_seed(seed)
    enc = build_encoder(backbone, float(info["width"]))
    if state is not None:
        try:
            enc.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise SpecError([("--encoder", f"{path} does not match backbone {backbone} width {info['width']} "
                                           f"({str(e).splitlines()[0]}); pass --backbone/--width")]) from e
    return enc, info


def raw_pixels(args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """The pixels themselves as features (the trainer's raw-pixel baseline): no encoder, so no backbone or width."""
    if args.encoder or args.random_init:
        raise SpecError([("--raw-pixels", "evaluates no encoder; drop --encoder / --random-init")])
    if not args.image_size:
        raise SpecError([("--image-size", "--raw-pixels needs the size the images are compared at (32 for CIFAR)")])
    return torch.nn.Flatten(), {"source": "raw-pixels", "backbone": None, "width": None, "imageSize": args.image_size}


def _dataset(folder: str, split: str, image_size: int):
    fmt = "npy" if os.path.isfile(os.path.join(folder, "train_images.npy")) or \
        os.path.isfile(os.path.join(folder, "test_images.npy")) else "image-folder"
    return data_mod.open_dataset({"format": fmt, "path": folder, "evalPath": folder, "imageSize": image_size}, split)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker knn", description="kNN (and linear probe) accuracy "
                                 "of an encoder: bank = train split of --data, queries = eval split")
    ap.add_argument("--encoder", help="exported encoder .pt (with .json sidecar) or a checkpoint step-<k> folder")
    ap.add_argument("--random-init", action="store_true", help="evaluate an untrained encoder (baseline)")
    ap.add_argument("--raw-pixels", action="store_true", help="evaluate the normalised, flattened pixels at "
                    "--image-size (baseline; --preset picks the normalisation)")
    ap.add_argument("--data", required=True, help="npy folder (train_/test_*.npy) or image class folders")
    ap.add_argument("--eval-data", help="image-folder queries (default: --data; npy uses test_*.npy)")
    ap.add_argument("--backbone", help="default: from the sidecar/checkpoint")
    ap.add_argument("--width", type=float)
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--preset", choices=sorted(presets()["presets"]), help="normalisation mean/std to use")
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--bank-size", type=int, default=0, help="cap on bank images (0 = all)")
    ap.add_argument("--query-size", type=int, default=0, help="cap on query images (0 = all)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--linear-probe", action="store_true", help="also fit a logistic regression on the bank's "
                    "features (the paper's transfer protocol: the L2 penalty is chosen on 10%% of them)")
    ap.add_argument("--device", default="auto", help="auto (a GPU when one is visible), cpu, cuda, cuda:1 ...")
    ap.add_argument("--seed", type=int, default=0, help="init seed for --random-init")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.k < 1 or args.temperature <= 0:
        print("knn: --k must be >= 1 and --temperature > 0", file=sys.stderr)
        return 2
    try:
        if args.raw_pixels:
            enc, info = raw_pixels(args)
        else:
            enc, info = load_encoder(args.encoder, args.backbone, args.width, args.image_size, args.random_init,
                                     args.seed)
        norm = info.get("normalize")
        if args.preset or not norm:
            p = presets()
            name = args.preset or ("byol-cifar" if str(info["backbone"]).endswith("-cifar") else p["defaultPreset"])
            norm = p["presets"][name].get("augment", {}).get("normalize") or p["defaults"]["augment"]["normalize"]
        size = int(info["imageSize"])
        bank_ds = _dataset(args.data, "train", size)
        query_ds = _dataset(args.eval_data or args.data, "eval", size)
        args.device = pick_device(args.device)
        enc.to(args.device)
        t0 = time.monotonic()
        feats = eval_features(enc, bank_ds, query_ds, norm["mean"], norm["std"], size, args.bank_size,
                              args.query_size, args.device, args.batch_size)
        out = {**knn_score(*feats, args.k, args.temperature), "seconds": round(time.monotonic() - t0, 3)}
        if args.linear_probe:  # on the same features
            tx, ty, qx, qy = feats
            probe = linear_probe(tx, ty, qx, qy, num_classes(ty, qy))
            out.update(linearTop1=probe["top1"], linearWeightDecay=probe["weight_decay"])
    except (SpecError, ValueError) as e:  # SpecError/DataError/ExportError: the message names the input
        print(f"knn: {e}", file=sys.stderr)
        return 2
    out.update(encoder=info.get("source", args.encoder), backbone=info["backbone"], width=info["width"],
               imageSize=size, step=info.get("step"))
    if args.json:
        print(json.dumps(out))
    else:
        extra = f", linear probe top-1 {out['linearTop1']:.4f}" if "linearTop1" in out else ""
        print(f"kNN top-1 {out['top1']:.4f} (k={out['k']}, T={out['temperature']}, bank {out['bank']}, "
              f"queries {out['queries']}, {out['seconds']} s){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
