"""Bench smoke run (tiny model, a couple of steps): the command works and reports sane numbers."""
import json

import numpy as np
import torch

from byol_worker.bench import PilViews, augment_defaults, main


def test_presets_feed_the_bench_views():
    views, norm = augment_defaults("resnet18-cifar")
    assert [v["blurProb"] for v in views] == [0.0, 0.0] and [v["solarizeProb"] for v in views] == [0.0, 0.2]
    assert norm["mean"][0] == 0.4914 and views[0]["semantics"]["crop"] == "rejection"  # the preset's torchvision semantics
    views, norm = augment_defaults("resnet50")
    assert [v["blurProb"] for v in views] == [1.0, 0.1] and norm["std"][2] == 0.225


def test_reference_dataset_gives_two_normalised_views():
    views, norm = augment_defaults("resnet50")
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    ds = PilViews(images, views, 24, norm, 5)
    v1, v2 = ds[3]
    assert len(ds) == 5 and v1.shape == v2.shape == (3, 24, 24) and v1.dtype == torch.float32
    assert -3 < v1.min() and v1.max() < 3 and not torch.equal(v1, v2)


def test_bench_json_smoke(capsys):
    rc = main(["--json", "--device", "cpu", "--width", "0.0625", "--hidden", "32", "--batch", "4", "--steps", "1",
               "--warmup", "1",
               "--threads", "1", "--loader-workers", "1", "--precision", "fp32"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["device"] == "cpu" and r["precision"] == "fp32" and r["batch"] == 4 and r["image_size"] == 32
    assert set(r["results"]) == {"full", "step", "augment", "reference"}
    for v in r["results"].values():
        assert v["ms_per_step"] > 0 and abs(v["images_per_s"] / (4000 / v["ms_per_step"]) - 1) < 1e-3
    assert r["full_vs_reference"] > 0
