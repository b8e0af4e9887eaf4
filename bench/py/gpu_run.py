"""The stages of `bash bench/gpu.sh` (see there): prepare here, run on the device machine, record here.

    prepare --out DIR        resolve and validate the quality specs (jsonschema is here, not on the device)
    run --specs DIR --data DIR --out DIR [--stages "tests bench speed peers quality ab"] [--limit 540]
    record --results FILE --benchmarks BENCHMARKS.md

`run` writes gpu-results.json (and the logs) into --out, stage by stage, so a run cut short still reports what it
measured; a stage that would not fit in what is left of --limit is skipped and says so.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time

from gpu_ab import prepare_ab, stage_ab  # beside this file
from gpu_speed import stage_speed

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = "/tmp/byol-cifar"  # where the device decodes the JPEG pack
# (name, preset, epochs, spec overrides): the recipes the issue compares on the shared 20k/10k subset at B 512, full
# width, most wanted first (a run cut short keeps the first ones); then the short preset at the peer's wall time
QUALITY = [("byol-cifar-short-32ep", "byol-cifar-short", 32, {}),
           ("byol-cifar-short-32ep-seed1", "byol-cifar-short", 32, {"train": {"seed": 1}}),
           ("byol-cifar-short-32ep-lr2x", "byol-cifar-short", 32, {"optimizer": {"baseLr": 0.06}}),
           ("byol-cifar-32ep", "byol-cifar", 32, {})]
PEER_WALL_S = 133.0  # lightly's 32-epoch run on an H200 (../shared/gpu-harness/README.md); the equal-time budget
BENCH = [("resnet18-cifar", 512, 20, 5), ("resnet50", 128, 10, 3)]  # model, batch, steps, warmup


def quality_doc(preset: str, epochs: int, over: dict | None = None) -> dict:
    doc = {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": f"gpu-{preset}"},
            "spec": {"preset": preset, "data": {"format": "npy", "path": DATA, "imageSize": 32, "loaderWorkers": 0},
                     "model": {"backbone": "resnet18-cifar", "width": 1.0},
                     "train": {"epochs": epochs, "globalBatch": 512, "precision": "bf16", "syncBatchNorm": False,
                               "seed": 0, "logEverySteps": 100},
                     "resources": {"workers": 1, "device": "cuda"},
                     "checkpoint": {"everySteps": 0, "keepLast": 1},
                     "eval": {"knn": {"enabled": True, "everyEpochs": 0, "k": 200, "temperature": 0.1,
                                      "bankSize": 0, "querySize": 0, "baselines": True}}}}
    for section, values in (over or {}).items():
        doc["spec"].setdefault(section, {}).update(values)
    return doc


def prepare(out: str) -> None:
    sys.path.insert(0, os.path.join(REPO, "worker-py"))
    from byol_worker.spec import resolve
    os.makedirs(out, exist_ok=True)
    for name, preset, epochs, over in QUALITY:
        with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(resolve(quality_doc(preset, epochs, over), check_data=False), f)
    print(f"resolved {len(QUALITY)} quality specs into {out}")
    prepare_ab(out, lambda: quality_doc("byol-cifar-short", 32), resolve)


# ---------------------------------------------------------------- on the device

class Run:
    def __init__(self, out: str, limit: float, reserve: float = 0.0):
        """reserve: seconds kept back by the stages before quality, for it (0 when quality is not run)"""
        self.out, self.t0, self.limit, self.reserve = out, time.monotonic(), limit, reserve
        self.results: dict = {"stages": {}, "skipped": []}

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.t0)

    def save(self) -> None:
        with open(os.path.join(self.out, "gpu-results.json"), "w", encoding="utf-8") as f:
            json.dump(self.results, f, indent=1)

    def sh(self, cmd: list[str], timeout: float, log: str) -> subprocess.CompletedProcess:
        with open(os.path.join(self.out, log), "a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(cmd)}\n")
            try:
                return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired as e:
                f.write(f"timed out after {timeout:.0f} s\n")
                return subprocess.CompletedProcess(cmd, 124, e.stdout or "", "")


def env_info() -> dict:
    import torch
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
            "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(card=p.name, memory_gib=round(p.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    return info


def decode(data: str) -> None:
    import numpy as np
    from multiprocessing import Pool
    os.makedirs(DATA, exist_ok=True)
    for split in ("train", "test"):
        raw = open(os.path.join(data, f"{split}_jpeg.bin"), "rb").read()
        offs = np.load(os.path.join(data, f"{split}_offsets.npy"))
        with Pool(min(16, os.cpu_count() or 1)) as pool:
            imgs = np.stack(pool.map(_decode_one, [raw[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)], 500))
        np.save(os.path.join(DATA, f"{split}_images.npy"), imgs)
        np.save(os.path.join(DATA, f"{split}_labels.npy"), np.load(os.path.join(data, f"{split}_labels.npy")))


def _decode_one(blob: bytes):
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def stage_tests(r: Run) -> dict:
    tests = ["worker-py/tests/test_gpu.py", "worker-py/tests/test_train_devices.py"]
    tests += sorted(os.path.join("worker-py/tests", f) for f in os.listdir(os.path.join(REPO, "worker-py/tests"))
                    if f.startswith("test_core_"))
    p = r.sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], min(150, r.left() - r.reserve - 100),
             "pytest.txt")
    summary = (p.stdout.strip().splitlines() or [""])[-1]
    with open(os.path.join(r.out, "pytest.txt"), "a", encoding="utf-8") as f:
        f.write(p.stdout)
    return {"rc": p.returncode, "summary": summary}


def stage_bench(r: Run) -> dict:
    out = {}
    for model, batch, steps, warmup in BENCH:
        for graph in ("on", "off"):  # the shipped step (a CUDA graph), then eager for the ratio
            extra = ["--loader-workers", "12"] if graph == "on" else ["--no-reference"]
            p = r.sh([sys.executable, "-m", "byol_worker", "bench", "--json", "--device", "cuda", "--model", model,
                      "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup), "--cuda-graph", graph,
                      *extra], min(120, r.left() - r.reserve - 50), "bench.log")
            out[f"{model}-b{batch}-graph-{graph}"] = (json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0
                                                      else {"failed": p.returncode})
    return out


def stage_peers(r: Run) -> dict:
    peers = os.path.join(REPO, ".gpu", "peers_bench.py")
    if not os.path.isfile(peers):
        return {"skipped": "no .gpu/peers_bench.py (prepare copies it from ../shared/gpu-harness when present)"}
    out = {}
    for model, batch, steps in (("r18c", 512, 12), ("r50", 128, 8)):
        for peer in ("lightly", "lucidrains"):
            for prec in ("fp32", "bf16"):
                p = r.sh([sys.executable, peers, "--peer", peer, "--model", model, "--batch", str(batch), "--precision",
                          prec, "--steps", str(steps), "--warmup", "3"], min(60, r.left() - r.reserve - 20), "peers.log")
                out[f"{peer}-{model}-{prec}"] = (json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0
                                                 else {"failed": p.returncode})
    return out


def stage_quality(r: Run, specs: str) -> dict:
    """Each training run in its own process, so a CUDA error in one cannot poison the next; the short preset
    at the peer's wall time comes second, once the first run has measured the rate."""
    out: dict = {}
    names = [name for name, _, _, _ in QUALITY]
    plan = [(names[0], 0), ("byol-cifar-short-equal-wall", -1)] + [(n, 0) for n in names[1:]]
    first = None  # (wall s, epochs) of the first run
    for name, epochs in plan:
        spec_file = os.path.join(specs, f"{names[0] if epochs < 0 else name}.json")
        if epochs < 0:  # as many epochs as the peer's wall time allows at the first run's rate
            if not first:
                continue
            epochs = int(PEER_WALL_S * 0.95 / first[0] * first[1])
        need = first[0] * (epochs or 32) / first[1] + 20 if first else 90
        if r.left() < need:
            r.results["skipped"].append(f"quality {name}: {r.left():.0f} s left, about {need:.0f} s needed")
            continue
        result = os.path.join(r.out, f"quality-{name}.json")
        p = r.sh([sys.executable, os.path.abspath(__file__), "train-one", "--spec", spec_file, "--epochs", str(epochs),
                  "--result", result], r.left() - 5, "quality.log")
        out[name] = json.load(open(result)) if p.returncode == 0 and os.path.isfile(result) else {"failed": p.returncode}
        if first is None and "wall_s" in out[name]:
            first = (out[name]["wall_s"], out[name]["epochs"])
        r.results["stages"]["quality"] = out
        r.save()
    return out


def ab_command(spec_file: str, result: str, pil: bool) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "train-one", "--spec", spec_file, "--result", result,
            *(["--pil"] if pil else [])]


def train_one(spec_file: str, epochs: int, result: str, pil: bool = False) -> int:
    import logging
    import tempfile
    from byol_worker.train import rank_setup
    from byol_worker.train.trainer import train_in_process
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    spec = json.load(open(spec_file))
    spec = spec.get("doc", spec)  # an A/B cell's file wraps the spec with what the cell changes
    if pil:  # quality_ab's per-sample PIL views in place of the batched on-device augmentation
        from quality_ab import PilAugment
        s = spec["spec"]
        rank_setup.build_augs = lambda _spec: [PilAugment(s["augment"][v], int(s["data"]["imageSize"]),
                                                          s["augment"]["normalize"]) for v in ("view1", "view2")]
    if epochs:
        spec["spec"]["train"]["epochs"] = epochs
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as ck:
        res = train_in_process(spec, checkpoint_dir=ck)
    wall = time.monotonic() - t0
    B = spec["spec"]["train"]["globalBatch"]
    out = {"epochs": spec["spec"]["train"]["epochs"], "steps": res.step, "exit": res.exit_code, "message": res.message,
           "wall_s": round(wall, 1), "img_s": round(res.step * B / wall), "knn_top1": res.knn_top1,
           "last_loss": res.losses[max(res.losses)] if res.losses else None, **res.baselines,
           "preset": spec["spec"]["preset"], "cuda_graphs": spec["spec"]["train"].get("cudaGraphs")}
    json.dump(out, open(result, "w"))
    return 0 if res.exit_code == 0 else 1


def run(a: argparse.Namespace) -> int:
    os.makedirs(a.out, exist_ok=True)
    trains = {"quality", "ab"} & set(a.stages.split())
    r = Run(a.out, a.limit, reserve=150 if trains else 0)
    r.results["env"] = env_info()
    r.save()
    stages = a.stages.split()
    if trains:
        t = time.monotonic()
        decode(a.data)
        r.results["decode_s"] = round(time.monotonic() - t, 1)
    for name in ("tests", "bench", "speed", "peers", "quality", "ab"):
        if name not in stages:
            continue
        if r.left() < 60:
            r.results["skipped"].append(f"{name}: {r.left():.0f} s left")
            continue
        t = time.monotonic()
        try:
            got = {"tests": lambda: stage_tests(r), "bench": lambda: stage_bench(r),
                   "speed": lambda: stage_speed(r), "peers": lambda: stage_peers(r),
                   "quality": lambda: stage_quality(r, a.specs),
                   "ab": lambda: stage_ab(r, a.specs, ab_command)}[name]()
        except Exception as e:  # report and go on: a later stage may still measure something
            got = {"error": f"{type(e).__name__}: {e}"[:800]}
        got["stage_s"] = round(time.monotonic() - t, 1)
        r.results["stages"][name] = got
        r.save()
    print(json.dumps(r.results)[:4000])
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", required=True)
    p = sub.add_parser("run")
    p.add_argument("--specs", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stages", default="tests bench quality")  # gpu.sh's STAGES, when set, replaces it
    p.add_argument("--limit", type=float, default=540)
    p = sub.add_parser("train-one")  # one quality run, in its own process (stage_quality)
    p.add_argument("--spec", required=True)
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--result", required=True)
    p.add_argument("--pil", action="store_true", help="per-sample PIL views (the A/B matrix's pil cell)")
    p = sub.add_parser("record")
    p.add_argument("--results", required=True, action="append", help="gpu-results.json of a run (repeatable)")
    p.add_argument("--benchmarks", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.out)
        return 0
    if a.cmd == "run":
        return run(a)
    if a.cmd == "train-one":
        return train_one(a.spec, a.epochs, a.result, a.pil)
    from gpu_record import record  # beside this file; only the record step needs it
    return record(a.results, a.benchmarks)


if __name__ == "__main__":
    sys.exit(main())
