"""Job documents and npy data folders for the spec and data-layout tests."""
import os

import numpy as np


def write_npy(folder, n=40, size=8, prefixes=("train", "test"), img_dtype=np.uint8):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for p in prefixes:
        np.save(os.path.join(folder, f"{p}_images.npy"), rng.integers(0, 256, (n, size, size, 3)).astype(img_dtype))
        np.save(os.path.join(folder, f"{p}_labels.npy"), (np.arange(n) % 4).astype(np.int64))
    return folder


def base_doc(path="data"):
    return {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "t1"},
            "spec": {"preset": "byol-cifar", "data": {"format": "npy", "path": path},
                     "resources": {"workers": 2}}}


def edit(path, value):
    """A doc transform setting a dotted path (creating objects on the way); value None deletes."""
    def f(doc):
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
        return doc
    return f
