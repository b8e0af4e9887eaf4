"""The data-layout checks a spec's resolution runs (byol_worker/data/layout.py): each names the field and file."""
import os

import numpy as np
import pytest

from byol_worker.spec import SpecError, load_spec
from spec_docs import base_doc, edit, write_npy


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_image_folder_names_it(tmp_path):
    cls = tmp_path / "imgs" / "cat"
    cls.mkdir(parents=True)
    (cls / "a.jpg").write_bytes(b"x")
    cls.chmod(0)
    try:
        doc = {"apiVersion": "byol/v1", "kind": "PretrainJob", "metadata": {"name": "t"},
               "spec": {"data": {"format": "image-folder", "path": str(tmp_path / "imgs")}}}
        with pytest.raises(SpecError, match=r"spec\.data\.path: .*cat cannot be read \(EACCES\)"):
            load_spec(doc)
    finally:
        cls.chmod(0o755)


def test_bad_npy_layout_names_the_file(tmp_path):
    write_npy(str(tmp_path / "data"), img_dtype=np.float32)
    with pytest.raises(SpecError) as ei:
        load_spec(base_doc(), base_dir=str(tmp_path))
    assert "train_images.npy must be uint8" in str(ei.value)
    np.save(tmp_path / "data" / "train_images.npy", np.zeros((40, 8, 8, 3), np.uint8))
    np.save(tmp_path / "data" / "train_labels.npy", np.zeros(39, np.int64))
    with pytest.raises(SpecError, match=r"train_labels.npy must be integer labels of shape \(40,\)"):
        load_spec(base_doc(), base_dir=str(tmp_path))


def test_eval_split_checked_only_when_knn_enabled(tmp_path):
    write_npy(str(tmp_path / "data"), prefixes=("train",))
    with pytest.raises(SpecError) as ei:
        load_spec(base_doc(), base_dir=str(tmp_path))
    assert ei.value.issues[0][0] == "spec.data.evalPath" and "test_images.npy not found" in ei.value.issues[0][1]
    doc = edit("spec.eval", {"knn": {"enabled": False}})(base_doc())
    assert load_spec(doc, base_dir=str(tmp_path))["spec"]["data"]["path"] == str(tmp_path / "data")
