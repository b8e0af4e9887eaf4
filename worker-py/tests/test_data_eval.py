"""kNN monitor, linear probe, encoder export and the knn CLI."""
import json
import math
import os

import numpy as np
import pytest
import torch

from byol_worker.evaluate import export, knn
from byol_worker.core import checkpoint
from byol_worker.data.loading import SyntheticDataset
from byol_worker.evaluate.knn import extract_features, knn_eval, knn_predict, to_input
from byol_worker.evaluate.probe import fit_logistic, linear_probe
from byol_worker.core.model import build_encoder, build_model
from byol_worker.spec import load_spec

torch.set_num_threads(1)
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_MODEL = {"backbone": "resnet18-cifar", "width": 0.125, "projector": {"hiddenDim": 32, "outDim": 16},
              "predictor": {"hiddenDim": 32}}


def shared_data():
    return os.environ.get("BYOL_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg")


def unit(cos: float) -> list:
    """A unit vector with cosine `cos` to the query e1."""
    return [cos, math.sqrt(1 - cos * cos), 0.0]


# ---------------------------------------------------------------- kNN by hand

def test_knn_weights_are_exp_sim_over_t():
    # Bank: one class-0 neighbour at cos 0.9, two class-1 neighbours at 0.8 and 0.7, and a far class-1 one.
    bank = torch.tensor([unit(0.9), unit(0.8), unit(0.7), unit(-0.5)])
    labels = torch.tensor([0, 1, 1, 1])
    q = torch.tensor([[1.0, 0.0, 0.0]])
    # T = 0.1: class 0 scores e^9 = 8103.1; class 1 scores e^8 + e^7 = 2981.0 + 1096.6 = 4077.6 -> class 0
    assert knn_predict(bank, labels, q, 2, k=3, temperature=0.1).tolist() == [0]
    # T = 1: e^0.9 = 2.460 < e^0.8 + e^0.7 = 2.226 + 2.014 = 4.239 -> class 1 (weights no longer dominate)
    assert knn_predict(bank, labels, q, 2, k=3, temperature=1.0).tolist() == [1]
    # k = 1: the nearest neighbour alone; k larger than the bank is clamped to the bank
    assert knn_predict(bank, labels, q, 2, k=1, temperature=1.0).tolist() == [0]
    # k = 200 (all 4) at T = 0.1: the far neighbour adds e^-5 = 0.007 to class 1 -> still class 0 for e1;
    # a query equal to the far vector has it at cos 1 (e^10) -> class 1. One query per chunk.
    qs = torch.tensor([[1.0, 0.0, 0.0], unit(-0.5)])
    assert knn_predict(bank, labels, qs, 2, k=200, temperature=0.1, chunk=1).tolist() == [0, 1]


def test_knn_eval_on_hand_made_features():
    class Table:
        """A dataset whose 'images' are feature rows; the encoder reads them back (bypasses the ResNet)."""
        def __init__(self, feats, labels):
            self.f, self.y = torch.tensor(feats, dtype=torch.float32), torch.tensor(labels)

        def __len__(self):
            return len(self.y)

        def get_batch(self, idx):
            idx = torch.as_tensor(np.asarray(idx))
            return self.f[idx].view(len(idx), 1, 1, 3), self.y[idx]

    enc = torch.nn.Flatten()
    bank = Table([unit(0.9), unit(0.8), unit(0.7), [0, 0, 1]], [0, 1, 1, 2])
    queries = Table([[1, 0, 0], [0, 0, 5], [0.1, 0, 2]], [0, 2, 1])
    ident = ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    out = knn_eval(enc, bank, queries, *ident, image_size=1, k=3, temperature=0.1, batch_size=2)
    assert out["top1"] == pytest.approx(2 / 3) and (out["bank"], out["queries"]) == (4, 3)
    out = knn_eval(enc, bank, queries, *ident, image_size=1, k=3, temperature=0.1, query_size=1)
    assert out["queries"] == 1


def test_to_input_normalises_and_features_use_eval_mode():
    x = torch.tensor([[[[255, 0, 51]]]], dtype=torch.uint8)  # one 1x1 NHWC pixel
    y = to_input(x, [0.5, 0.5, 0.2], [0.25, 0.5, 0.1], 1, "cpu")
    assert y.shape == (1, 3, 1, 1) and torch.allclose(y.flatten(), torch.tensor([2.0, -1.0, 0.0]), atol=1e-6)
    assert to_input(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), [0] * 3, [1] * 3, 4, "cpu").shape == (2, 3, 4, 4)

    class Probe(torch.nn.Module):
        seen = []

        def forward(self, x):
            self.seen.append(self.training)
            return x.flatten(1) + 1

    enc = Probe().train()
    feats, _ = extract_features(enc, SyntheticDataset(8, 2, 8), np.arange(8), [0] * 3, [1] * 3, 8, batch_size=4)
    assert Probe.seen == [False, False] and enc.training          # eval while extracting, restored after
    assert torch.allclose(feats.norm(dim=1), torch.ones(8))


def _blobs(rng, centers: np.ndarray, n: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n points around the given class centres (noise sd 1.2), times scale, with their labels."""
    y = rng.integers(0, len(centers), n)
    return ((centers[y] + rng.normal(0, 1.2, (n, centers.shape[1]))) * scale).astype(np.float32), y


def test_linear_probe_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1.0, (4, 16))
    xtr, ytr = _blobs(rng, centers, 400)
    xte, yte = _blobs(rng, centers, 400)
    wd = 1e-2
    # sklearn minimises 0.5||w||^2 + C * sum(CE); ours mean(CE) + wd/2 ||w||^2  ->  C = 1 / (wd * n)
    sk = LogisticRegression(C=1 / (wd * 400), max_iter=1000, tol=1e-8).fit(xtr, ytr)
    W, b, loss = fit_logistic(torch.tensor(xtr), torch.tensor(ytr), 4, weight_decay=wd)
    probs = torch.softmax(torch.tensor(xte) @ W + b, dim=1).numpy()
    assert np.abs(probs - sk.predict_proba(xte)).max() < 2e-3       # the same optimum
    assert loss < math.log(4) - 0.5                                 # the final loss, not the initial ln 4
    ours = linear_probe(torch.tensor(xtr), torch.tensor(ytr), torch.tensor(xte), torch.tensor(yte), 4, weight_decay=wd)
    assert abs(ours["top1"] - sk.score(xte, yte)) <= 0.005 and ours["loss"] == pytest.approx(loss, rel=1e-4)
    assert 0.5 < ours["top1"] < 1.0


def test_linear_probe_chooses_its_penalty_on_a_validation_split():
    """Features 1000x smaller than the blobs above: the old fixed penalty (1e-4) flattens the probe to 47%, so the
    chosen one must be smaller, and reach what sklearn's weakly penalised fit reaches."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 1.0, (4, 16))
    (xtr, ytr), (xte, yte) = [map(torch.tensor, _blobs(rng, centers, n, scale=0.001)) for n in (600, 400)]
    fixed = linear_probe(xtr, ytr, xte, yte, 4, weight_decay=1e-4)
    chosen = linear_probe(xtr, ytr, xte, yte, 4)
    weak = LogisticRegression(C=1e6, max_iter=5000, tol=1e-10).fit(xtr.numpy(), ytr.numpy()).score(xte.numpy(), yte.numpy())
    assert fixed["top1"] < 0.5 < weak - 0.1, (fixed["top1"], weak)
    assert chosen["weight_decay"] <= 1e-5 and chosen["top1"] >= weak - 0.03, (chosen, weak)


# ---------------------------------------------------------------- export

def _spec():
    return load_spec({"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "ex"},
                      "spec": {"preset": "byol-cifar", "model": TINY_MODEL,
                               "data": {"format": "synthetic", "numSamples": 64, "numClasses": 4, "imageSize": 16}}})


def _checkpoint(tmp_path, step=12):
    resolved = _spec()
    torch.manual_seed(3)
    model = build_model(resolved["spec"]["model"], 16)
    with torch.no_grad():  # make the online encoder differ from any fresh init
        for p in model.online_encoder.parameters():
            p.mul_(1.05).add_(0.01)
        model.online_encoder.bn1.running_mean.fill_(0.01)
    snap = checkpoint.snapshot(step, model.state_dict(), {"state": {}, "param_groups": []}, {"ranks": []},
                               {"spec_hash": "ab" * 32, "epoch": 0, "world_size": 1}, resolved)
    return checkpoint.write(snap, str(tmp_path / "ckpt")).path, model, resolved


def test_export_round_trip_loads_strictly_into_a_fresh_encoder(tmp_path):
    ck, model, resolved = _checkpoint(tmp_path)
    out = str(tmp_path / "out" / "encoder.pt")
    assert export.main(["--checkpoint", ck, "--out", out]) == 0
    state = torch.load(out, weights_only=True)
    assert not any(k.startswith(("fc.", "online_encoder.")) for k in state)
    assert "conv1.weight" in state and "layer4.1.bn2.running_var" in state  # torchvision names
    fresh = build_encoder("resnet18-cifar", 0.125)
    fresh.load_state_dict(state, strict=True)
    ref = model.online_encoder.state_dict()
    assert set(ref) == set(state) and all(torch.equal(ref[k], state[k]) for k in ref)
    side = json.load(open(str(tmp_path / "out" / "encoder.json")))
    assert side["backbone"] == "resnet18-cifar" and side["width"] == 0.125 and side["imageSize"] == 16
    assert side["step"] == 12 and side["specHash"] == "ab" * 32  # taken from the checkpoint, never recomputed
    assert side["normalize"]["mean"] == [0.4914, 0.4822, 0.4465]


def test_export_refuses_a_corrupt_checkpoint(tmp_path, capsys):
    ck, _, _ = _checkpoint(tmp_path)
    with open(os.path.join(ck, "model.pt"), "r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage")
    out = str(tmp_path / "encoder.pt")
    assert export.main(["--checkpoint", ck, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "sha256 does not match" in err and "pick an earlier step-<k> folder" in err
    assert not os.path.exists(out)


# ---------------------------------------------------------------- knn CLI

def test_knn_cli_on_export_checkpoint_and_random_init(tmp_path, capsys):
    ck, _, _ = _checkpoint(tmp_path)
    out = str(tmp_path / "encoder.pt")
    export.export(ck, out)
    rng = np.random.default_rng(0)
    data = tmp_path / "npy"
    data.mkdir()
    for p, n in (("train", 60), ("test", 20)):
        y = rng.integers(0, 3, n)
        x = (np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200]])[y][:, None, None, :] + rng.integers(0, 50, (n, 16, 16, 3)))
        np.save(data / f"{p}_images.npy", x.astype(np.uint8))
        np.save(data / f"{p}_labels.npy", y.astype(np.int64))
    results = []
    for args in (["--encoder", out], ["--encoder", ck], ["--random-init", "--backbone", "resnet18-cifar",
                                                          "--width", "0.125", "--image-size", "16"]):
        assert knn.main(args + ["--data", str(data), "--k", "5", "--json", "--linear-probe"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["top1"] == results[1]["top1"] and results[0]["step"] == 12   # export == its checkpoint
    assert results[2]["encoder"] == "random-init" and results[2]["queries"] == 20
    for r in results:   # three colour classes are easy even for these encoders
        assert r["top1"] > 0.6 and 0 <= r["linearTop1"] <= 1
    assert knn.main(["--raw-pixels", "--encoder", out, "--image-size", "16", "--data", str(data)]) == 2
    assert "--raw-pixels" in capsys.readouterr().err
    assert knn.main(["--raw-pixels", "--data", str(data)]) == 2
    assert "--image-size" in capsys.readouterr().err
    assert knn.main(["--encoder", str(tmp_path / "nope.pt"), "--data", str(data)]) == 2
    assert "no such encoder file" in capsys.readouterr().err
    assert knn.main(["--encoder", out, "--width", "0.25", "--data", str(data)]) == 2
    assert "does not match backbone resnet18-cifar width 0.25" in capsys.readouterr().err


def test_knn_cli_raw_pixels_is_nearest_neighbour_on_the_normalised_pixels(tmp_path, capsys):
    """Random images with random labels: the accuracy depends on every pixel, and is computed here by hand (k = 1)."""
    rng = np.random.default_rng(1)
    images = {p: rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for p, n in (("train", 50), ("test", 40))}
    labels = {p: rng.integers(0, 4, len(x)).astype(np.int64) for p, x in images.items()}
    for p in images:
        np.save(tmp_path / f"{p}_images.npy", images[p])
        np.save(tmp_path / f"{p}_labels.npy", labels[p])
    norm = knn.presets()["presets"]["byol-cifar"]["augment"]["normalize"]

    def features(x):
        f = ((x / 255.0 - np.array(norm["mean"])) / np.array(norm["std"])).reshape(len(x), -1)
        return f / np.linalg.norm(f, axis=1, keepdims=True)
    nearest = (features(images["test"]) @ features(images["train"]).T).argmax(1)
    expected = float((labels["train"][nearest] == labels["test"]).mean())
    assert knn.main(["--raw-pixels", "--image-size", "8", "--preset", "byol-cifar", "--data", str(tmp_path),
                     "--k", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["encoder"] == "raw-pixels" and r["queries"] == 40
    assert r["top1"] == pytest.approx(expected, abs=1e-9)


def test_knn_cli_on_real_cifar_subset(capsys):
    if not os.path.isdir(shared_data()):
        pytest.fail(f"shared CIFAR-10 data not at {shared_data()}: set BYOL_SHARED_DATA to the cifar10-jpeg folder")
    args = ["--random-init", "--backbone", "resnet18-cifar", "--width", "0.125", "--data", shared_data(),
            "--bank-size", "1000", "--query-size", "200", "--json"]
    assert knn.main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["bank"], r["queries"], r["imageSize"]) == (1000, 200, 32)
    assert 0.12 < r["top1"] < 0.6   # a random conv net is above chance (10%) on real photos, far from trained
