"""Data-layout checks: the training (and kNN eval) data exist with the layout their format needs.

spec.py runs check_data_layout when it resolves a spec; the datasets (loading.py) use the same readers. The
coordinator mirrors these messages (orchestrator/src/spec/dataset.ts).
"""
from __future__ import annotations

import errno
import os

import numpy as np

from ..spec_error import SpecError

_IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CONVERT_HINT = (
    "for CIFAR run `python -m byol_worker convert-cifar --archive cifar-10-python.tar.gz --out DIR`; "
    "an npy folder holds train_images.npy (uint8 N,H,W,3), train_labels.npy (int64 N) and test_*.npy for eval"
)


class DataError(SpecError):
    """Missing or malformed data; the message names the file and says how to get the data."""


def npy_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file from its header only (no data read)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(f)
    return tuple(shape), dtype


def npy_split_size(folder: str, prefix: str, field: str) -> int:
    """Check `<prefix>_images.npy`/`<prefix>_labels.npy` in folder; return N or raise SpecError."""
    img, lab = (os.path.join(folder, f"{prefix}_{n}.npy") for n in ("images", "labels"))
    for f in (img, lab):
        if not os.path.isfile(f):
            raise DataError([(field, f"{f} not found; {CONVERT_HINT}")])
    try:
        ishape, idtype = npy_header(img)
        lshape, ldtype = npy_header(lab)
    except (ValueError, OSError) as e:
        raise DataError([(field, f"{img} or {lab} is not a readable .npy file ({e})")]) from e
    if idtype != np.uint8 or len(ishape) != 4 or ishape[3] != 3:
        raise DataError([(field, f"{img} must be uint8 of shape (N, H, W, 3), found {idtype} {ishape}")])
    if len(lshape) != 1 or lshape[0] != ishape[0] or ldtype.kind not in "iu":
        raise DataError([(field, f"{lab} must be integer labels of shape ({ishape[0]},), found {ldtype} {lshape}")])
    return ishape[0]


def _listdir(folder: str, field: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError as e:
        code = errno.errorcode.get(e.errno or 0, "OSError")
        raise DataError([(field, f"{folder} cannot be read ({code}); give the user byol runs as read access; image-folder "
                                 "data needs one subfolder per class holding .jpg/.jpeg/.png files")]) from e


def image_folder_classes(folder: str, field: str) -> list[tuple[str, list[str]]]:
    """Sorted (class name, sorted image files) of an image-folder tree; raise SpecError when unusable."""
    if not os.path.isdir(folder):
        raise DataError([(field, f"{folder} is not a folder; image-folder data needs one subfolder per class "
                                 "holding .jpg/.jpeg/.png files")])
    out = []
    for name in sorted(_listdir(folder, field)):
        sub = os.path.join(folder, name)
        if os.path.isdir(sub):
            files = sorted(f for f in _listdir(sub, field) if f.lower().endswith(_IMAGE_EXTS))
            out.append((name, [os.path.join(sub, f) for f in files]))
    if not any(files for _, files in out):
        raise DataError([(field, f"{folder} has no class subfolders with .jpg/.jpeg/.png images")])
    return out


def check_data_layout(spec: dict) -> None:
    """Check the training (and kNN eval) data exist with the right layout."""
    data = spec["data"]
    knn = spec["eval"]["knn"]["enabled"]
    if data["format"] == "npy":
        npy_split_size(data["path"], "train", "spec.data.path")
        if knn:
            npy_split_size(data["evalPath"], "test", "spec.data.evalPath")
    elif data["format"] == "image-folder":
        image_folder_classes(data["path"], "spec.data.path")
        if knn:
            image_folder_classes(data["evalPath"], "spec.data.evalPath")
