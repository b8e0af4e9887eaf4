"""Spec loading, validation messages, preset merge, plan numbers and resolved files (docs/internals.md).
The data-layout checks are in test_data_layout.py; test_spec_vectors.py holds the resolver to the shared vectors."""
import json
import os

import pytest

from byol_worker.core.schedule_plan import plan, split_batch
from byol_worker.spec import SpecError, load_job, load_spec
from spec_docs import base_doc, edit, write_npy

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(REPO, "examples")


def shared_data():
    return os.environ.get("BYOL_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg")


ERROR_CASES = [
    ("wrong type", edit("spec.train.epochs", "ten"), "spec.train.epochs", "must be a number"),
    ("wrong type int", edit("spec.train.globalBatch", 2.5), "spec.train.globalBatch", "must be an integer"),
    ("negative LR", edit("spec.optimizer.baseLr", -0.1), "spec.optimizer.baseLr", "must be > 0"),
    ("zero LR", edit("spec.optimizer.baseLr", 0), "spec.optimizer.baseLr", "must be > 0"),
    ("unknown field", edit("spec.foo", 1), "spec.foo", "unknown field"),
    ("unknown nested", edit("spec.optimizer.lr", 1), "spec.optimizer.lr", "unknown field"),
    ("bad enum", edit("spec.data.format", "csv"), "spec.data.format",
     "must be one of 'npy', 'image-folder', 'synthetic'"),
    ("bad const", edit("apiVersion", "v2"), "apiVersion", "must be 'byol/v1'"),
    ("missing data", edit("spec.data", None), "spec.data", "required field is missing"),
    ("tau above 1", edit("spec.ema.base", 1.5), "spec.ema.base", "must be <= 1"),
    ("array length", edit("spec.augment.view1.cropScale", [0.1]), "spec.augment.view1.cropScale",
     "must have exactly 2 items"),
    ("array item", edit("spec.augment.view1.cropScale", [-0.1, 1]), "spec.augment.view1.cropScale.0", "must be >= 0"),
    ("minWorkers > workers", edit("spec.resources.minWorkers", 3), "spec.resources.minWorkers",
     "must be <= spec.resources.workers (2)"),
    ("npy without path", edit("spec.data.path", None), "spec.data.path", "required when spec.data.format is 'npy'"),
    ("missing data path", edit("spec.data.path", "nowhere"), "spec.data.path", "convert-cifar"),
    # hostile numbers (issue 11): YAML's .inf/.nan and sizes that would exhaust a worker
    ("infinite epochs", edit("spec.train.epochs", float("inf")), "spec.train.epochs", "must be finite"),
    ("NaN LR", edit("spec.optimizer.baseLr", float("nan")), "spec.optimizer.baseLr", "must be finite"),
    ("-inf in an array", edit("spec.augment.normalize.mean", [0.5, float("-inf"), 0.5]), "spec.augment.normalize.mean.1",
     "must be finite"),
    ("huge hidden dim", edit("spec.model.projector.hiddenDim", 10**9), "spec.model.projector.hiddenDim", "must be <= 16384"),
    ("huge predictor", edit("spec.model.predictor.hiddenDim", 10**9), "spec.model.predictor.hiddenDim", "must be <= 16384"),
    ("huge out dim", edit("spec.model.projector.outDim", 10**6), "spec.model.projector.outDim", "must be <= 8192"),
    ("huge batch", edit("spec.train.globalBatch", 2**31), "spec.train.globalBatch", "must be <= 65536"),
    ("huge epochs", edit("spec.train.epochs", 1e6), "spec.train.epochs", "must be <= 10000"),
    ("huge loader", edit("spec.data.loaderWorkers", 10**4), "spec.data.loaderWorkers", "must be <= 64"),
]


@pytest.mark.parametrize("name,mutate,field,message", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_spec_errors_name_the_field(tmp_path, name, mutate, field, message):
    write_npy(str(tmp_path / "data"))
    doc = mutate(base_doc())
    with pytest.raises(SpecError) as ei:
        load_spec(doc, base_dir=str(tmp_path))
    issues = dict(ei.value.issues)
    assert field in issues, ei.value.issues
    assert message in issues[field]
    assert f"{field}: " in str(ei.value)


def test_infinite_value_gets_one_issue_naming_it(tmp_path):
    doc = edit("spec.train.epochs", float("inf"))(base_doc())
    with pytest.raises(SpecError) as ei:
        load_spec(doc, base_dir=str(tmp_path))
    assert ei.value.issues == [("spec.train.epochs", "must be finite")]  # not also "must be <= 10000"


def test_yaml_inf_and_alias_bomb_files(tmp_path):
    f = tmp_path / "inf.yaml"
    f.write_text("apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: t}\n"
                 "spec: {data: {format: synthetic}, train: {epochs: .inf}}\n")
    with pytest.raises(SpecError, match=r"spec\.train\.epochs: must be finite"):
        load_spec(str(f))
    bomb = tmp_path / "bomb.yaml"
    rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]" for p, n in zip("abcdef", "bcdefg")]
    bomb.write_text("\n".join(rows) + "\n")
    with pytest.raises(SpecError, match="expands to more than"):
        load_spec(str(bomb))


def test_total_steps_are_capped(tmp_path):
    doc = {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "t"},
           "spec": {"data": {"format": "synthetic", "numSamples": 100_000_000}, "train": {"epochs": 10000, "globalBatch": 2}}}
    resolved = load_spec(doc)
    with pytest.raises(SpecError) as ei:
        plan(resolved, world_size=1, dataset_size=100_000_000)
    assert ei.value.issues == [("spec.train.epochs", "10000 epochs of 50000000 steps make 500000000000 steps, over the "
                                "maximum of 100000000; lower spec.train.epochs or raise spec.train.globalBatch")]


def test_all_issues_reported_at_once(tmp_path):
    doc = edit("spec.foo", 1)(edit("spec.optimizer.baseLr", -1)(base_doc()))
    with pytest.raises(SpecError) as ei:
        load_spec(doc, base_dir=str(tmp_path))
    assert [p for p, _ in ei.value.issues] == ["spec.foo", "spec.optimizer.baseLr"]


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: byol/v1\nkind: PretrainJob\nspec: {data: [1, 2\nmetadata: x\n")
    with pytest.raises(SpecError) as ei:
        load_spec(str(f))
    assert str(f) in str(ei.value) and "line 4" in str(ei.value) and "YAML syntax error" in str(ei.value)


def test_oversized_and_missing_files(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(SpecError, match=r"big.yaml: spec file is \d+ bytes, over the 1048576 byte limit"):
        load_spec(str(f))
    with pytest.raises(SpecError, match=r"nope.yaml: cannot read spec file"):
        load_spec(str(tmp_path / "nope.yaml"))
    f.write_text("- a list\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(str(f))
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    f.write_text(laughs)   # 10^9 values from a few hundred bytes
    with pytest.raises(SpecError, match="big.yaml: spec expands to more than 100000 values"):
        load_spec(str(f))


def test_schema_errors_from_a_file_name_field_and_file(tmp_path):
    f = tmp_path / "job.yaml"
    f.write_text("apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: Bad_Name}\n"
                 "spec: {data: {format: synthetic}, optimizer: {baseLr: -1}}\n")
    with pytest.raises(SpecError) as ei:
        load_spec(str(f))
    assert dict(ei.value.issues)["spec.optimizer.baseLr"] == "must be > 0"
    assert "metadata.name" in dict(ei.value.issues)


def test_byol_cifar_preset_resolves_to_documented_numbers(tmp_path):
    write_npy(str(tmp_path / "d"))
    f = tmp_path / "job.yaml"
    f.write_text("apiVersion: byol/v1\nkind: PretrainJob\nmetadata: {name: c}\n"
                 "spec:\n  preset: byol-cifar\n  data: {format: npy, path: d}\n"
                 "  augment: {view1: {flipProb: 0.25, cropScale: [0.2, 1.0]}}\n  resources: {workers: 4}\n")
    r = load_spec(str(f))
    s = r["spec"]
    assert s["data"] == {"format": "npy", "path": str(tmp_path / "d"), "evalPath": str(tmp_path / "d"),
                         "imageSize": 32, "loaderWorkers": 2, "numSamples": 1024, "numClasses": 10}
    assert s["model"] == {"backbone": "resnet18-cifar", "width": 1.0, "zeroInitResidual": False,
                          "projector": {"hiddenDim": 4096, "outDim": 256}, "predictor": {"hiddenDim": 4096}}
    o = s["optimizer"]
    assert (o["name"], o["baseLr"], o["lrScaling"], o["weightDecay"], o["momentum"], o["trustCoefficient"],
            o["larsClip"], o["excludeBiasAndNorm"], o["warmupEpochs"]) == \
        ("lars", 1.0, "none", 1e-5, 0.9, 0.02, True, True, 10)
    assert s["ema"] == {"base": 0.99, "schedule": "cosine"}
    assert s["train"]["globalBatch"] == 256 and s["train"]["epochs"] == 1000
    v1, v2 = s["augment"]["view1"], s["augment"]["view2"]
    assert v1["flipProb"] == 0.25 and v1["cropScale"] == [0.2, 1.0] and v1["blurProb"] == 0.0  # merged
    assert v1["jitterProb"] == 0.8 and v1["solarizeProb"] == 0.0
    assert v2["blurProb"] == 0.0 and v2["solarizeProb"] == 0.2 and v2["cropScale"] == [0.08, 1.0]
    assert s["augment"]["normalize"]["mean"] == [0.4914, 0.4822, 0.4465]
    assert s["augment"]["semantics"] == {"crop": "rejection", "resample": "bicubic", "brightness": "multiplicative",
                                         "contrast": "gray-mean", "saturation": "gray-blend"}  # torchvision, as solo-learn
    assert s["resources"] == {"workers": 4, "minWorkers": 4, "device": "auto", "threadsPerWorker": 0}
    assert "_source" not in str(r) and "_comment" not in str(r)
    assert r["metadata"] == {"name": "c"} and s["preset"] == "byol-cifar"


def test_default_preset_is_the_paper(tmp_path):
    doc = {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "p"},
           "spec": {"data": {"format": "synthetic"}}}
    s = load_spec(doc)["spec"]
    assert (s["optimizer"]["baseLr"], s["optimizer"]["lrScaling"], s["optimizer"]["weightDecay"]) == (0.2, "linear", 1.5e-6)
    assert (s["train"]["globalBatch"], s["ema"]["base"], s["model"]["backbone"]) == (4096, 0.996, "resnet50")
    assert (s["augment"]["view1"]["blurProb"], s["augment"]["view2"]["blurProb"]) == (1.0, 0.1)
    assert "path" not in s["data"] and "evalPath" not in s["data"]
    p = plan(load_spec(doc), 16, 1281167)
    assert p["stepsPerEpoch"] == 312 and p["peakLr"] == pytest.approx(3.2, abs=1e-15)  # 0.2 * 4096 / 256


def test_plan_by_hand():
    r = load_spec(edit("spec.data", {"format": "synthetic"})(base_doc()))
    p = plan(r, 1, 20000)   # byol-cifar: B 256, 1000 epochs, 10 warmup epochs, lr 1.0 unscaled
    assert p == {"stepsPerEpoch": 78, "totalSteps": 78000, "warmupSteps": 780, "peakLr": 1.0, "tauBase": 0.99, "tauSchedule": "cosine",
                 "globalBatch": 256, "microBatch": 256, "accumulation": 1}
    assert plan(r, 4, 20000)["microBatch"] == 64
    with pytest.raises(SpecError) as ei:
        plan(r, 3, 20000)
    (path, msg), = ei.value.issues
    assert path == "spec.train.globalBatch"
    assert "spec.resources.workers = 3" in msg and "1, 2, 4, 8, 16, 32, 64, 128, 256" in msg


def test_plan_edges():
    r = load_spec(edit("spec.data", {"format": "synthetic"})(base_doc()))
    s = r["spec"]
    s["train"]["epochs"], s["optimizer"]["warmupEpochs"] = 0.01, 10
    p = plan(r, 1, 20000)  # floor(0.01 * 78) = 0 -> K = 1, warmup = min(780, 0) = 0
    assert (p["totalSteps"], p["warmupSteps"]) == (1, 0)
    s["train"]["epochs"] = 5
    assert plan(r, 1, 20000)["warmupSteps"] == 389  # K - 1 = 390 - 1
    s["train"]["epochs"], s["optimizer"]["warmupEpochs"] = 2.5, 0.5
    assert (plan(r, 1, 1000)["totalSteps"], plan(r, 1, 1000)["warmupSteps"]) == (7, 1)  # spe 3: floor(7.5), floor(1.5)
    s["optimizer"]["lrScaling"] = "linear"
    assert plan(r, 1, 1000)["peakLr"] == 1.0 and plan(r, 1, 1000)["globalBatch"] == 256
    s["train"]["globalBatch"] = 512
    assert plan(r, 1, 1000)["peakLr"] == 2.0  # 1.0 * 512 / 256
    with pytest.raises(SpecError, match=r"spec.train.globalBatch: 512 is larger than the dataset \(500 samples\)"):
        plan(r, 1, 500)


def test_micro_batch_and_accumulation():
    assert split_batch(256, 2, 0) == (128, 1)
    assert split_batch(256, 2, 128) == (128, 1)
    assert split_batch(256, 2, 48) == (32, 4)     # largest divisor of 128 that is <= 48
    assert split_batch(4096, 8, 256) == (256, 2)
    assert split_batch(96, 4, 5) == (4, 6)        # 24: divisors <= 5 -> 4
    for W, mb in ((1, 7), (3, 10), (6, 4)):
        b, a = split_batch(96, W, mb)
        assert W * b * a == 96


def test_resolved_file_is_used_as_is_and_checked(tmp_path):
    """The file `byolctl plan --resolved` writes: no re-resolution, its specHash kept; bad ones refused by name."""
    resolved = load_spec(os.path.join(EXAMPLES, "synthetic-tiny.yaml"))
    resolved["spec"]["train"]["seed"] = 7  # a resolved file is taken as it is, not merged again
    f = tmp_path / "resolved.json"
    f.write_text(json.dumps({**resolved, "specHash": "0f" * 32}))
    assert load_job(str(f)) == (resolved, "0f" * 32)
    assert load_job(os.path.join(EXAMPLES, "synthetic-tiny.yaml"))[1] == ""  # a YAML: no hash, only the coordinator's
    for extra, field, msg in (({"specHash": "abc"}, "specHash", "64 lowercase hex"),
                              ({"specHash": "0f" * 32, "plan": {}}, "plan", "unknown top-level field"),
                              ({"specHash": "0f" * 32, "spec": None}, "spec", "needs a 'spec' object")):
        f.write_text(json.dumps({**resolved, **extra}))
        with pytest.raises(SpecError) as ei:
            load_job(str(f))
        assert field in dict(ei.value.issues) and msg in dict(ei.value.issues)[field] and str(f) in str(ei.value)


def test_examples_resolve():
    for name, n in (("cifar10", 50000), ("imagenet", 1281167)):
        r = load_spec(os.path.join(EXAMPLES, f"{name}.yaml"), check_data=False)
        p = plan(r, r["spec"]["resources"]["workers"], n)
        assert p["totalSteps"] == 1000 * p["stepsPerEpoch"]
    r = load_spec(os.path.join(EXAMPLES, "imagenet.yaml"), check_data=False)
    assert plan(r, 16, 1281167)["peakLr"] == pytest.approx(3.2) and plan(r, 8, 1281167)["accumulation"] == 2
    tiny = load_spec(os.path.join(EXAMPLES, "synthetic-tiny.yaml"))
    assert plan(tiny, 1, tiny["spec"]["data"]["numSamples"])["totalSteps"] == 8


def test_quickstart_example_points_at_the_shared_data():
    if not os.path.isdir(shared_data()):
        pytest.fail(f"shared CIFAR-10 data not at {shared_data()}: set BYOL_SHARED_DATA to the cifar10-jpeg folder")
    r = load_spec(os.path.join(EXAMPLES, "quickstart.yaml"))
    assert os.path.samefile(r["spec"]["data"]["path"], shared_data())
    p = plan(r, 2, 20000)
    assert (p["stepsPerEpoch"], p["microBatch"], p["accumulation"]) == (312, 32, 1)
