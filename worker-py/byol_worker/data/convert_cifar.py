"""Convert the official CIFAR-10/100 python archives into the npy layout the trainer reads.

    python -m byol_worker convert-cifar --archive cifar-10-python.tar.gz --out data/cifar10
    python -m byol_worker convert-cifar --archive cifar-100-python.tar.gz --out data/cifar100  # fine labels

Writes train_images.npy (uint8 N,32,32,3), train_labels.npy (int64), test_images.npy, test_labels.npy and
classes.txt, the layout of shared/data/cifar10-jpeg. The archive's pickles are read with an unpickler that
only admits dicts, lists and numpy arrays, so a crafted archive cannot run code.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import pickle
import sys
import tarfile

import numpy as np

log = logging.getLogger(__name__)

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),  # protocol-2 bytes
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class ConvertError(ValueError):
    """The archive is not a CIFAR python archive; the message names the archive or member."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _load(tar: tarfile.TarFile, member: str, archive: str) -> dict:
    try:
        f = tar.extractfile(member)
    except KeyError:
        f = None
    if f is None:
        raise ConvertError(f"{archive}: member {member} not found; expected the official "
                           "cifar-10-python.tar.gz or cifar-100-python.tar.gz")
    try:
        d = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ConvertError(f"{archive}: member {member} is not a CIFAR pickle ({e})") from e
    if not isinstance(d, dict):
        raise ConvertError(f"{archive}: member {member} holds {type(d).__name__}, expected a dict")
    return d


def _images(d: dict, member: str, archive: str) -> np.ndarray:
    data = np.asarray(d.get(b"data"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ConvertError(f"{archive}: {member}[b'data'] must be uint8 (N, 3072), found {data.dtype} {data.shape}")
    # Rows are 1024 R, then 1024 G, then 1024 B values, each row-major 32x32: CHW -> HWC.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _labels(d: dict, key: bytes, n: int, member: str, archive: str) -> np.ndarray:
    if key not in d:
        raise ConvertError(f"{archive}: {member} has no {key!r}")
    y = np.asarray(d[key], dtype=np.int64)
    if y.shape != (n,):
        raise ConvertError(f"{archive}: {member}[{key!r}] has {y.shape[0] if y.ndim else 0} labels for {n} images")
    return y


def read_archive(archive: str) -> dict:
    """{'train': (x, y), 'test': (x, y), 'classes': [...]} from a CIFAR-10 or CIFAR-100 python archive."""
    try:
        tar = tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise ConvertError(f"{archive}: cannot open as a tar archive ({e})") from e
    with tar:
        names = set(tar.getnames())
        if "cifar-10-batches-py/batches.meta" in names:
            root, key = "cifar-10-batches-py", b"labels"
            train_members = [f"{root}/data_batch_{i}" for i in range(1, 6)]
            test_member, meta_member, class_key = f"{root}/test_batch", f"{root}/batches.meta", b"label_names"
        elif "cifar-100-python/meta" in names:
            root, key = "cifar-100-python", b"fine_labels"
            train_members = [f"{root}/train"]
            test_member, meta_member, class_key = f"{root}/test", f"{root}/meta", b"fine_label_names"
        else:
            raise ConvertError(f"{archive}: neither cifar-10-batches-py/batches.meta nor cifar-100-python/meta "
                               "found; download cifar-10-python.tar.gz or cifar-100-python.tar.gz")
        out = {}
        for split, members in (("train", train_members), ("test", [test_member])):
            xs, ys = [], []
            for m in members:
                d = _load(tar, m, archive)
                x = _images(d, m, archive)
                xs.append(x)
                ys.append(_labels(d, key, len(x), m, archive))
            out[split] = (np.concatenate(xs), np.concatenate(ys))
        meta = _load(tar, meta_member, archive)
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(class_key, [])]
    n_classes = int(max(out["train"][1].max(), out["test"][1].max())) + 1
    if len(classes) < n_classes or min(out["train"][1].min(), out["test"][1].min()) < 0:
        raise ConvertError(f"{archive}: labels run to {n_classes - 1} but {meta_member} names {len(classes)} classes")
    out["classes"] = classes
    return out


def _save_npy(path: str, arr: np.ndarray) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert(archive: str, out_dir: str) -> dict:
    """Write the npy layout into out_dir; returns {'train': N, 'test': M, 'classes': C}."""
    data = read_archive(archive)
    os.makedirs(out_dir, exist_ok=True)
    for split in ("train", "test"):
        x, y = data[split]
        _save_npy(os.path.join(out_dir, f"{split}_images.npy"), x)
        _save_npy(os.path.join(out_dir, f"{split}_labels.npy"), y)
    with open(os.path.join(out_dir, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("".join(c + "\n" for c in data["classes"]))
    summary = {"train": len(data["train"][1]), "test": len(data["test"][1]), "classes": len(data["classes"])}
    log.info("wrote %s: %d train, %d test images, %d classes; use it as spec.data {format: npy, path: %s}",
             out_dir, summary["train"], summary["test"], summary["classes"], out_dir)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byol_worker convert-cifar", description=__doc__.split("\n")[0])
    ap.add_argument("--archive", required=True, help="cifar-10-python.tar.gz or cifar-100-python.tar.gz")
    ap.add_argument("--out", required=True, help="output folder for the npy files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        convert(args.archive, args.out)
    except ConvertError as e:
        print(f"convert-cifar: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
