"""The quality A/B matrix of bench/py/quality_ab.py at full width on a GPU: `STAGES=ab bash bench/gpu.sh run`.

Each cell is the `byol-cifar-short` preset (lightly's recipe, the base cell of the CPU matrix) at 32 epochs, B 512,
full-width ResNet-18, with one change taken from quality_ab.CELLS, so both matrices change the same things. The
cells run in the order below, most wanted first; a run cut short keeps the first ones and says which it skipped.
"""
from __future__ import annotations

import json
import os

# most wanted first: the base (the reference of this call), the recipe cells, the augmentation semantics, then the
# PIL pair (the slowest: PIL per sample on the CPU)
AB = ["base", "tau-cosine", "heads-4096", "fp32", "cifar-norm", "brightness-additive", "contrast-channel",
      "saturation-hsv", "crop-single", "resample-bicubic", "pil-semantics", "pil"]


def prepare_ab(out: str, base_doc, resolve) -> None:
    """Resolved specs `ab-<cell>.json` in `out`; base_doc() is gpu_run's quality document for the short preset."""
    import copy
    from quality_ab import CELLS, _set  # beside this file
    for cell in AB:
        doc = base_doc()
        for path, value in CELLS[cell][1]:
            _set(doc, path, copy.deepcopy(value))
        resolved = resolve(doc, check_data=False)
        resolved["metadata"]["name"] = f"gpu-ab-{cell}"
        with open(os.path.join(out, f"ab-{cell}.json"), "w", encoding="utf-8") as f:
            json.dump({"cell": cell, "changes": CELLS[cell][0], "pil": cell == "pil", "doc": resolved}, f)
    print(f"resolved {len(AB)} A/B cells into {out}")


def stage_ab(r, specs: str, train_one_cmd) -> dict:
    """One process per cell (as stage_quality); train_one_cmd(spec_file, result, pil) is the command line."""
    out: dict = {}
    wall = None  # the first cell's wall time, to tell whether the next fits
    for cell in AB:
        need = (wall * 1.3 if cell == "pil" else wall) + 20 if wall else 90
        if r.left() < need:
            r.results["skipped"].append(f"ab {cell}: {r.left():.0f} s left, about {need:.0f} s needed")
            continue
        spec_file = os.path.join(specs, f"ab-{cell}.json")
        cfg = json.load(open(spec_file, encoding="utf-8"))
        result = os.path.join(r.out, f"ab-{cell}.json")
        p = r.sh(train_one_cmd(spec_file, result, cfg["pil"]), r.left() - 5, "ab.log")
        got = json.load(open(result)) if p.returncode == 0 and os.path.isfile(result) else {"failed": p.returncode}
        out[cell] = {"changes": cfg["changes"], **got}
        wall = wall or got.get("wall_s")
        r.results["stages"]["ab"] = out
        r.save()
    return out
