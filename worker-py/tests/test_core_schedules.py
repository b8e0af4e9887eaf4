"""LR/tau schedules: hand-computed values and the shared vectors (test/vectors/schedules.json)."""
import json
import math
from pathlib import Path

import pytest

from byol_worker.core.schedule_plan import plan
from byol_worker.core.schedules import lr_at, tau_at
from byol_worker.spec_error import SpecError

VECTORS = Path(__file__).resolve().parents[2] / "test" / "vectors" / "schedules.json"


def test_tau_hand_values():
    K = 312784
    assert tau_at(0, K, 0.996) == pytest.approx(0.996, abs=1e-15)
    assert tau_at(K // 2, K, 0.996) == pytest.approx(0.998, abs=1e-12)  # cos(pi/2) = 0
    assert tau_at(K, K, 0.996) == 1.0
    assert tau_at(K + 5, K, 0.996) == 1.0  # k clipped at K
    # K-1: 1 - 0.004 * (1 + cos(pi (K-1)/K)) / 2 ~ 1 - 0.004 * (pi/K)^2 / 4 ~ 1 - 1e-13: below 1
    assert 1.0 - 2e-13 < tau_at(K - 1, K, 0.996) < 1.0
    assert tau_at(1, 4, 0.9) == pytest.approx(1 - 0.1 * (math.sqrt(0.5) + 1) / 2, abs=1e-15)


def test_lr_hand_values():
    K, w, peak = 312784, 3127, 3.2
    assert lr_at(0, K, w, peak) == 0.0
    assert lr_at(w - 1, K, w, peak) == pytest.approx(3.2 * 3126 / 3127, abs=1e-15)
    assert lr_at(w, K, w, peak) == pytest.approx(3.2, abs=1e-15)  # warmup boundary = peak
    mid = w + (K - w) // 2  # (K - w) is odd: half a step past the cosine midpoint
    assert lr_at(mid, K, w, peak) == pytest.approx(1.6 * (1 + math.cos(math.pi * 154828 / 309657)), abs=1e-12)
    assert lr_at(K, K, w, peak) == pytest.approx(0.0, abs=1e-15)
    # no warmup: cosine from the first step; K = 4 -> 0.5 * (1 + cos(pi/4)) at k = 1
    assert lr_at(0, 4, 0, 2.0) == 2.0
    assert lr_at(1, 4, 0, 2.0) == pytest.approx(1 + math.sqrt(0.5), abs=1e-15)
    assert lr_at(2, 4, 0, 2.0) == pytest.approx(1.0, abs=1e-15)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="warmupSteps"):
        lr_at(0, 10, 10, 1.0)
    with pytest.raises(ValueError, match="K must be"):
        tau_at(0, 0, 0.99)
    with pytest.raises(ValueError, match="step k"):
        lr_at(-1, 10, 1, 1.0)


def test_matches_shared_vectors():
    cases = json.loads(VECTORS.read_text())["cases"]
    assert len(cases) >= 40
    keys = {(c["K"], c["warmupSteps"]) for c in cases}
    assert (312784, 3127) in keys
    for c in cases:
        assert abs(lr_at(c["k"], c["K"], c["warmupSteps"], c["peakLr"]) - c["lr"]) <= 1e-12, c
        assert abs(tau_at(c["k"], c["K"], c["tauBase"], c["tauSchedule"]) - c["tau"]) <= 1e-12, c
    # the file must carry the boundary cases the TypeScript side relies on
    big = [c for c in cases if c["K"] == 312784]
    assert {0, 3126, 3127, 156392, 312783, 312784} <= {c["k"] for c in big}
    assert any(c["k"] > c["K"] for c in cases)


def test_lr_is_clipped_at_K_like_the_official_code():
    # Past the last step the LR stays at 0 instead of rising on the cosine's second half.
    assert lr_at(1000, 1000, 100, 0.45) == 0.0
    assert lr_at(1500, 1000, 100, 0.45) == 0.0
    assert lr_at(2000, 1000, 100, 0.45) == 0.0


def test_constant_tau_stays_at_its_base_and_unknown_schedules_are_refused():
    assert [tau_at(k, 10, 0.99, "constant") for k in (0, 5, 10, 20)] == [0.99] * 4
    assert tau_at(5, 10, 0.99, "") == tau_at(5, 10, 0.99, "cosine")  # an empty proto field means cosine
    with pytest.raises(ValueError, match="tauSchedule must be one of cosine, constant"):
        tau_at(0, 10, 0.99, "linear")


def test_plans_match_shared_vectors():
    """K, warmup, peak LR and the batch split from the spec's numbers, W and N; TypeScript checks the same file."""
    plans = json.loads(VECTORS.read_text())["plans"]
    assert len(plans) >= 15 and sum("issues" in p for p in plans) >= 3
    for p in plans:
        i = p["inputs"]
        spec = {"train": {"globalBatch": i["globalBatch"], "epochs": i["epochs"], "microBatch": i["microBatch"]},
                "optimizer": {"warmupEpochs": i["warmupEpochs"], "baseLr": i["baseLr"], "lrScaling": i["lrScaling"]},
                "ema": {"base": i["tauBase"], "schedule": i["tauSchedule"]}}
        try:
            got = {"plan": plan({"spec": spec}, p["W"], p["N"])}
        except SpecError as e:
            got = {"issues": [list(x) for x in e.issues]}
        assert {**p, **got} == p

