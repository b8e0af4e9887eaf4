"""Export the online encoder of a verified checkpoint as a plain PyTorch state dict.

    python -m byol_worker export --checkpoint ckpt/step-000000500 --out encoder.pt

Writes `encoder.pt` (torchvision parameter names, no `fc`) and `encoder.json` beside it (backbone, width,
imageSize, normalize, step, specHash). Load it with plain PyTorch:

    from byol_worker.core.model import build_encoder
    enc = build_encoder("resnet18-cifar", 1.0); enc.load_state_dict(torch.load("encoder.pt"))
    # ImageNet-stem backbones also load into torchvision.models.resnet50() with strict=False (only fc missing)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import torch

from ..core import checkpoint
from ..core.model import build_encoder

log = logging.getLogger("byol.export")
PREFIX = "online_encoder."


class ExportError(ValueError):
    """The checkpoint or export file cannot be used; the message names it and says what to do."""


def online_encoder_state(model_state: dict, where: str) -> dict:
    """The online encoder's tensors from a BYOLModel state dict, `online_encoder.` stripped, no `fc.*`."""
    if isinstance(model_state.get("online_encoder"), dict):  # a checkpoint that nests per part
        flat = model_state["online_encoder"]
    else:
        flat = {k[len(PREFIX):]: v for k, v in model_state.items() if isinstance(k, str) and k.startswith(PREFIX)}
    state = {k: v for k, v in flat.items() if not k.startswith("fc.")}
    if not state:
        raise ExportError(f"{where}: no `{PREFIX}*` tensors in model.pt; is this a byol checkpoint?")
    return state


def sidecar_path(out: str) -> str:
    root, _ = os.path.splitext(out)
    return root + ".json"


def encoder_from_checkpoint(path: str) -> tuple[dict, dict]:
    """Verify and load a checkpoint folder; return (encoder state dict, info)."""
    try:
        ck = checkpoint.load(path)
    except checkpoint.CheckpointError as e:
        raise ExportError(f"{e}; pick an earlier step-<k> folder") from e
    doc = ck["spec"]
    spec = doc.get("spec", doc)
    model = spec.get("model", {})
    state = ck["state"]
    info = {
        "backbone": model.get("backbone"), "width": float(model.get("width", 1.0)),
        "imageSize": int(spec.get("data", {}).get("imageSize", 224)),
        "normalize": spec.get("augment", {}).get("normalize"),
        "step": int(state.get("step", ck.get("step", 0) or 0)),
        "specHash": state.get("spec_hash", ""),  # the coordinator's; empty for a standalone run of a YAML
        "source": os.path.abspath(path),
    }
    model_state = ck["model"]
    if isinstance(model_state, dict) and "model" in model_state and isinstance(model_state["model"], dict):
        model_state = model_state["model"]
    return online_encoder_state(model_state, os.path.join(path, "model.pt")), info


def read_export(path: str) -> tuple[dict, dict]:
    """An exported encoder file and its sidecar (empty info when there is none)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ExportError(f"{path}: no such encoder file") from e
    except Exception as e:
        raise ExportError(f"{path}: not a PyTorch state dict ({e})") from e
    if not isinstance(state, dict):
        raise ExportError(f"{path}: holds {type(state).__name__}, expected a state dict")
    info: dict = {"source": os.path.abspath(path)}
    side = sidecar_path(path)
    if os.path.isfile(side):
        with open(side, encoding="utf-8") as f:
            info.update(json.load(f))
        info["source"] = os.path.abspath(path)
    return state, info


def export(checkpoint_dir: str, out: str) -> dict:
    """Write the online encoder of checkpoint_dir to `out` (+ sidecar); returns the sidecar info."""
    state, info = encoder_from_checkpoint(checkpoint_dir)
    try:  # prove it loads strictly into a fresh encoder before anyone relies on the file
        build_encoder(info["backbone"], info["width"]).load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as e:
        raise ExportError(f"{checkpoint_dir}: online encoder does not match {info['backbone']} width "
                          f"{info['width']} from spec.json ({str(e).splitlines()[0]})") from e
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for target, write in ((out, lambda f: torch.save(state, f)),
                          (sidecar_path(out), lambda f: f.write(json.dumps(info, indent=1).encode()))):
        tmp = f"{target}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    log.info("exported the online encoder of %s (step %d) to %s; load it with "
             "build_encoder(%r, %s).load_state_dict(torch.load(%r))",
             checkpoint_dir, info["step"], out, info["backbone"], info["width"], out)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker export",
                                 description="write a checkpoint's online encoder as a plain state dict")
    ap.add_argument("--checkpoint", required=True, help="a verified step-<k> checkpoint folder")
    ap.add_argument("--out", required=True, help="output .pt file; a .json sidecar is written beside it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        info = export(args.checkpoint, args.out)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": os.path.abspath(args.out), "sidecar": os.path.abspath(sidecar_path(args.out)), **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
