"""Shared helpers for the trainer tests: tiny specs, real TCPStore/ZeroMQ harness for trainer processes."""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """CIFAR-10 JPEG subset: $BYOL_SHARED_DATA, else <repo>/../shared/data/cifar10-jpeg."""
    env = os.environ.get("BYOL_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "cifar10-jpeg"


def tiny_doc(**over) -> dict:
    """A job document for a width-0.125 ResNet-18 (CIFAR stem) with tiny heads on synthetic 32 px data."""
    doc = {
        "apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "tiny"},
        "spec": {
            "preset": "byol-cifar",
            "data": {"format": "synthetic", "numSamples": 64, "numClasses": 4, "imageSize": 32, "loaderWorkers": 0},
            "model": {"width": 0.125, "projector": {"hiddenDim": 32, "outDim": 16}, "predictor": {"hiddenDim": 32}},
            "optimizer": {"warmupEpochs": 0},
            "train": {"epochs": 1, "globalBatch": 16, "precision": "fp32", "channelsLast": False, "seed": 3,
                      "logEverySteps": 1},
            "resources": {"threadsPerWorker": 1, "device": "cpu"},
            "checkpoint": {"everySteps": 0},
            "eval": {"knn": {"enabled": False}},
        },
    }
    return merge(doc, over)


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolved(doc: dict, base_dir: str | None = None) -> dict:
    from byol_worker.optional import HAVE_JSONSCHEMA
    from byol_worker.spec import load_spec, resolve
    if not HAVE_JSONSCHEMA:  # the GPU image: the CPU suite validates these same test documents
        return resolve(doc, base_dir, check_schema=False)
    return load_spec(doc, base_dir=base_dir)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def python_exe() -> str:
    return sys.executable


def run_group(resolved_doc: dict, nproc: int, checkpoint_dir, timeout_s: float = 90.0, on_report=None,
              **kw) -> tuple[list[int], list, list]:
    """Run `nproc` real trainer processes (TCPStore, gloo, ZeroMQ) to the end.

    Returns (exit codes, telemetry Metrics, TrainerReports). `on_report(group, report)` may act mid-run.
    """
    import time
    from byol_worker.data.loading import open_dataset
    from byol_worker.train.launch_local import LocalGroup
    from byol_worker.core.schedule_plan import plan
    sched = plan(resolved_doc, nproc, len(open_dataset(resolved_doc["spec"]["data"], "train")))
    group = LocalGroup(resolved_doc, sched, nproc, str(checkpoint_dir), env={"BYOL_LOG_LEVEL": "WARNING"}, **kw)
    metrics, reports = [], []
    try:
        deadline = time.monotonic() + timeout_s
        while any(c is None for c in group.exit_codes()):
            assert time.monotonic() < deadline, f"trainers did not finish in {timeout_s}s"
            for r in group.reports(timeout_s=0.2):
                reports.append(r)
                if on_report is not None:
                    on_report(group, r)
            metrics += group.metrics()
        codes = group.wait(10)
        time.sleep(0.2)
        reports += group.reports(timeout_s=0.1)
        metrics += group.metrics(timeout_s=0.1)
    finally:
        group.close()
    return codes, metrics, reports


def load_model_state(step_dir) -> dict:
    from byol_worker.core import checkpoint as ckpt
    return ckpt.load(str(step_dir))["model"]


def param_names(resolved_doc: dict) -> set[str]:
    """Names of the learnable parameters (no BN buffers) of the job's BYOLModel."""
    from byol_worker.core.model import build_model
    return {n for n, _ in build_model(resolved_doc["spec"]["model"]).named_parameters()}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: the slowest tests (minutes); they still run in the suite")
