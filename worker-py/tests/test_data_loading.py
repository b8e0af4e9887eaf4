"""Datasets, the W-invariant data order, the batch loader, and convert-cifar (docs/internals.md "Data order")."""
import io
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from byol_worker.data import convert_cifar
from byol_worker.data.layout import DataError
from byol_worker.data.loading import (BatchLoader, ImageFolderDataset, NpyDataset, SyntheticDataset, epoch_permutation,
                                      global_batch_indices, open_dataset, rank_slice)
from byol_worker.evaluate.knn import knn_predict
from byol_worker.spec import load_spec

torch.set_num_threads(1)
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def shared_data():
    return os.environ.get("BYOL_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg")


def write_npy(folder, n=50, size=8, prefix="train"):
    os.makedirs(folder, exist_ok=True)
    x = np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = (np.arange(n) * 7 % 5).astype(np.int64)
    np.save(os.path.join(folder, f"{prefix}_images.npy"), x)
    np.save(os.path.join(folder, f"{prefix}_labels.npy"), y)
    return x, y


# ---------------------------------------------------------------- data order

def test_epoch_permutation_is_numpy_default_rng_of_seed_and_epoch():
    p = epoch_permutation(1000, 7, 3)
    assert np.array_equal(p, np.random.default_rng((7, 3)).permutation(1000))
    assert np.array_equal(p, epoch_permutation(1000, 7, 3))                 # deterministic
    assert not np.array_equal(p, epoch_permutation(1000, 7, 4))             # epochs differ
    assert not np.array_equal(p, epoch_permutation(1000, 8, 3))             # seeds differ
    assert sorted(p.tolist()) == list(range(1000))


def test_global_batches_walk_the_epoch_permutation():
    n, B, spe = 100, 16, 6  # drop-last: 96 of 100 samples per epoch
    p0, p1 = epoch_permutation(n, 0, 0), epoch_permutation(n, 0, 1)
    assert np.array_equal(global_batch_indices(n, B, 0, 2, spe), p0[32:48])
    assert np.array_equal(global_batch_indices(n, B, 0, 6, spe), p1[0:16])   # step 6 = epoch 1, j 0
    assert np.array_equal(global_batch_indices(n, B, 0, 13, spe), epoch_permutation(n, 0, 2)[16:32])
    epoch = np.concatenate([global_batch_indices(n, B, 0, k, spe) for k in range(spe)])
    assert len(set(epoch.tolist())) == 96                                    # no sample twice in an epoch


def test_rank_slices_are_world_size_invariant():
    g = global_batch_indices(1000, 24, 5, 17, 41)
    for W in (1, 2, 3, 4, 6, 8, 12, 24):
        parts = [rank_slice(g, r, W) for r in range(W)]
        assert all(len(p) == 24 // W for p in parts)
        assert np.array_equal(np.concatenate(parts), g)
    assert np.array_equal(rank_slice(g, 1, 4), g[6:12])
    with pytest.raises(ValueError, match="does not split over 5 ranks"):
        rank_slice(g, 0, 5)


# ---------------------------------------------------------------- datasets

def test_npy_dataset_get_batch_keeps_the_order_asked(tmp_path):
    x, y = write_npy(str(tmp_path))
    ds = open_dataset({"format": "npy", "path": str(tmp_path)}, "train")
    assert isinstance(ds, NpyDataset) and len(ds) == 50 and isinstance(ds.images, np.memmap)
    idx = [31, 2, 17, 2, 49]
    xb, yb = ds.get_batch(idx)
    assert xb.dtype == torch.uint8 and xb.shape == (5, 8, 8, 3) and yb.dtype == torch.int64
    assert np.array_equal(xb.numpy(), x[idx]) and np.array_equal(yb.numpy(), y[idx])


def test_npy_errors_name_the_file(tmp_path):
    write_npy(str(tmp_path))
    with pytest.raises(DataError, match=r"test_images.npy not found; for CIFAR run `python -m byol_worker "
                                        r"convert-cifar"):
        open_dataset({"format": "npy", "path": str(tmp_path), "evalPath": str(tmp_path)}, "eval")
    (tmp_path / "train_images.npy").write_bytes(b"not an npy file")
    with pytest.raises(DataError, match="train_images.npy or .*train_labels.npy is not a readable .npy file"):
        NpyDataset(str(tmp_path))


def test_real_cifar_npy_loads():
    if not os.path.isdir(shared_data()):
        pytest.fail(f"shared CIFAR-10 data not at {shared_data()}: set BYOL_SHARED_DATA to the cifar10-jpeg folder")
    tr = open_dataset({"format": "npy", "path": shared_data()}, "train")
    te = open_dataset({"format": "npy", "path": shared_data(), "evalPath": shared_data()}, "eval")
    assert (len(tr), len(te), tr.num_classes) == (20000, 10000, 10)
    x, y = tr.get_batch(global_batch_indices(len(tr), 256, 0, 5, len(tr) // 256))
    assert x.shape == (256, 32, 32, 3) and x.dtype == torch.uint8 and int(y.max()) <= 9


def write_image_folder(root, sizes=((40, 30), (30, 50), (32, 32))):
    colors = {"cat": (200, 30, 30), "ant": (30, 200, 30)}
    for cls, color in colors.items():
        os.makedirs(os.path.join(root, cls))
        for i, (w, h) in enumerate(sizes):
            fmt = "PNG" if i % 2 else "JPEG"
            Image.new("RGB", (w, h), color).save(os.path.join(root, cls, f"{i}.{fmt.lower()}"), fmt)
    (open(os.path.join(root, "cat", "notes.txt"), "w")).write("not an image")
    os.makedirs(os.path.join(root, "empty"))


def test_image_folder_sorted_classes_resized_uint8(tmp_path):
    write_image_folder(str(tmp_path))
    ds = open_dataset({"format": "image-folder", "path": str(tmp_path), "imageSize": 16}, "train")
    assert isinstance(ds, ImageFolderDataset)
    assert ds.classes == ["ant", "cat", "empty"] and len(ds) == 6 and ds.num_classes == 3
    x, y = ds.get_batch([0, 3, 5])
    assert x.shape == (3, 16, 16, 3) and x.dtype == torch.uint8
    assert y.tolist() == [0, 1, 1]
    assert abs(int(x[0, 8, 8, 1]) - 200) <= 3 and abs(int(x[1, 8, 8, 0]) - 200) <= 3  # ant green, cat red


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="is not a folder; image-folder data needs one subfolder per class"):
        ImageFolderDataset(str(tmp_path / "missing"), 16)
    os.makedirs(tmp_path / "c1")
    with pytest.raises(DataError, match="has no class subfolders with .jpg/.jpeg/.png images"):
        ImageFolderDataset(str(tmp_path), 16)
    (tmp_path / "c1" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    ds = ImageFolderDataset(str(tmp_path), 16)
    with pytest.raises(DataError, match=r"broken.jpg: cannot decode image"):
        ds.get_batch([0])
    with pytest.raises(DataError, match=r"broken.jpg: cannot decode image"):  # also from a worker process
        list(BatchLoader(ds, 1, 1, seed=0, rank=0, world_size=1, start_step=0, end_step=1, loader_workers=1))


def test_synthetic_is_deterministic_and_class_structured():
    a = SyntheticDataset(200, 4, 16, "train")
    b = SyntheticDataset(200, 4, 16, "train")
    xa, ya = a.get_batch(range(200))
    xb, yb = b.get_batch(range(200))
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.dtype == torch.uint8
    ev = SyntheticDataset(200, 4, 16, "eval")
    xe, ye = ev.get_batch(range(len(ev)))
    assert len(ev) == 50 and not torch.equal(xe[:5], xa[:5])
    # kNN on raw pixels must beat chance (25%) by far: the pattern is shared across splits
    f = lambda x: torch.nn.functional.normalize(x.reshape(len(x), -1).float() - 128, dim=1)  # noqa: E731
    acc = (knn_predict(f(xa), ya, f(xe), 4, k=20) == ye).float().mean().item()
    assert acc > 0.8


# ---------------------------------------------------------------- batch loader

def test_batch_loader_threads_yield_each_ranks_share(tmp_path):
    write_npy(str(tmp_path), n=64)
    ds = NpyDataset(str(tmp_path))
    B, spe = 16, 4
    per_rank = []
    for r in range(2):
        with_loader = BatchLoader(ds, B, spe, seed=3, rank=r, world_size=2, start_step=2, end_step=7, prefetch=2)
        per_rank.append(list(with_loader))
    for r in range(2):
        assert [k for k, _, _ in per_rank[r]] == [2, 3, 4, 5, 6]
    for i, k in enumerate(range(2, 7)):
        gx, gy = ds.get_batch(global_batch_indices(64, B, 3, k, spe))
        x = torch.cat([per_rank[0][i][1], per_rank[1][i][1]])
        assert torch.equal(x, gx) and torch.equal(torch.cat([per_rank[0][i][2], per_rank[1][i][2]]), gy)


def test_batch_loader_stops_early_and_surfaces_errors(tmp_path):
    ds = SyntheticDataset(64, 4, 8)
    loader = BatchLoader(ds, 8, 8, seed=0, rank=0, world_size=1, start_step=0, end_step=1000)
    it = iter(loader)
    next(it)
    it.close()  # the trainer breaks out early: the thread must stop
    assert loader._thread is None

    class Broken:
        def __len__(self):
            return 64

        def get_batch(self, idx):
            raise DataError([("", "/data/x.npy: truncated")])

    with pytest.raises(DataError, match="truncated"):
        list(BatchLoader(Broken(), 8, 8, 0, 0, 1, 0, 3))


def test_batch_loader_image_folder_decodes_in_worker_processes(tmp_path):
    write_image_folder(str(tmp_path))
    ds = ImageFolderDataset(str(tmp_path), 16)
    loader = BatchLoader(ds, 4, 1, seed=0, rank=1, world_size=2, start_step=0, end_step=3, loader_workers=1)
    got = list(loader)
    assert [k for k, _, _ in got] == [0, 1, 2]
    for k, x, y in got:
        ex, ey = ds.get_batch(loader.indices(k))
        assert x.shape == (2, 16, 16, 3) and torch.equal(x, ex) and torch.equal(y, ey)


# ---------------------------------------------------------------- convert-cifar

def _pickled(obj) -> bytes:
    # The official archives were pickled by Python 2 / numpy 1.x, which name numpy.core.multiarray.
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar10_archive(path, per_batch=3, n_test=4):
    rng = np.random.default_rng(0)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            d = {b"batch_label": b"training batch", b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 b"filenames": [b"f%d.png" % j for j in range(per_batch)]}
            batches[i] = d
            _add(tar, f"cifar-10-batches-py/data_batch_{i}", _pickled(d))
        t = {b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n_test)]}
        _add(tar, "cifar-10-batches-py/test_batch", _pickled(t))
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
        _add(tar, "cifar-10-batches-py/batches.meta", _pickled({b"label_names": names, b"num_vis": 3072}))
    return batches, t


def test_convert_cifar10_round_trip(tmp_path):
    archive, out = str(tmp_path / "cifar-10-python.tar.gz"), str(tmp_path / "out")
    batches, test = make_cifar10_archive(archive)
    assert convert_cifar.main(["--archive", archive, "--out", out]) == 0
    x, y = np.load(os.path.join(out, "train_images.npy")), np.load(os.path.join(out, "train_labels.npy"))
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y.tolist() == sum((batches[i][b"labels"] for i in range(1, 6)), [])
    row = batches[2][b"data"][1]   # train row 4 = batch 2, row 1: pixel (y=5, x=7), channel c at c*1024 + 5*32 + 7
    assert [int(x[4, 5, 7, c]) for c in range(3)] == [int(row[c * 1024 + 5 * 32 + 7]) for c in range(3)]
    xt = np.load(os.path.join(out, "test_images.npy"))
    assert np.array_equal(xt, test[b"data"].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1))
    assert np.load(os.path.join(out, "test_labels.npy")).tolist() == test[b"labels"]
    assert open(os.path.join(out, "classes.txt")).read().splitlines()[:2] == ["airplane", "automobile"]
    spec = {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "c"},
            "spec": {"preset": "byol-cifar", "data": {"format": "npy", "path": out}}}
    assert load_spec(spec)["spec"]["data"]["evalPath"] == out   # the layout passes the spec's data check


def test_convert_cifar100_uses_fine_labels(tmp_path):
    archive, out = str(tmp_path / "cifar-100-python.tar.gz"), str(tmp_path / "out")
    rng = np.random.default_rng(1)
    tr = {b"data": rng.integers(0, 256, (5, 3072), dtype=np.uint8), b"fine_labels": [99, 0, 5, 42, 7],
          b"coarse_labels": [1, 2, 3, 4, 5]}
    te = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"fine_labels": [3, 98], b"coarse_labels": [0, 1]}
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "cifar-100-python/train", _pickled(tr))
        _add(tar, "cifar-100-python/test", _pickled(te))
        _add(tar, "cifar-100-python/meta", _pickled({b"fine_label_names": [b"c%d" % i for i in range(100)],
                                                     b"coarse_label_names": [b"s%d" % i for i in range(20)]}))
    assert convert_cifar.convert(archive, out) == {"train": 5, "test": 2, "classes": 100}
    assert np.load(os.path.join(out, "train_labels.npy")).tolist() == [99, 0, 5, 42, 7]
    assert len(open(os.path.join(out, "classes.txt")).read().splitlines()) == 100


def test_convert_rejects_bad_archives(tmp_path, capsys):
    bad = str(tmp_path / "x.tar.gz")
    with tarfile.open(bad, "w:gz") as tar:
        _add(tar, "cifar-10-batches-py/batches.meta", _pickled({b"label_names": [b"a"]}))
    with pytest.raises(convert_cifar.ConvertError, match=r"member cifar-10-batches-py/data_batch_1 not found"):
        convert_cifar.convert(bad, str(tmp_path / "o"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with tarfile.open(bad, "w:gz") as tar:
        _add(tar, "cifar-10-batches-py/batches.meta", _pickled({b"label_names": [b"a"]}))
        _add(tar, "cifar-10-batches-py/data_batch_1", _pickled({b"data": Evil()}))
    with pytest.raises(convert_cifar.ConvertError, match="refusing to load"):
        convert_cifar.convert(bad, str(tmp_path / "o"))
    assert not os.path.exists(tmp_path / "o")   # nothing written
    (tmp_path / "plain.txt").write_text("hello")
    assert convert_cifar.main(["--archive", str(tmp_path / "plain.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot open as a tar archive" in capsys.readouterr().err


def test_convert_cifar_command_line(tmp_path):
    archive, out = str(tmp_path / "cifar-10-python.tar.gz"), str(tmp_path / "out")
    make_cifar10_archive(archive, per_batch=2, n_test=2)
    cmd = [sys.executable, "-m", "byol_worker", "convert-cifar", "--archive", archive, "--out", out]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "10 train, 2 test images, 10 classes" in done.stderr
    assert np.load(os.path.join(out, "train_images.npy")).shape == (10, 32, 32, 3)
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "missing.tar.gz"), "--out", out], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.tar.gz: cannot open as a tar archive" in bad.stderr
