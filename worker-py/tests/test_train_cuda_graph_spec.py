"""train.cudaGraphs on a host without CUDA: `auto` trains eagerly, `true` is refused before any step with the field
named (the graph itself is tested on a GPU in test_gpu.py)."""
from __future__ import annotations

import pytest

from byol_worker.train.trainer import BadInput, train_in_process
from conftest import resolved, tiny_doc


def test_auto_trains_eagerly_on_cpu(tmp_path):
    res = train_in_process(resolved(tiny_doc(spec={"train": {"cudaGraphs": "auto"}})), checkpoint_dir=str(tmp_path))
    assert res.exit_code == 0 and res.step == 4


def test_true_without_cuda_is_refused_with_the_field_named(tmp_path):
    with pytest.raises(BadInput, match=r"spec\.train\.cudaGraphs"):
        train_in_process(resolved(tiny_doc(spec={"train": {"cudaGraphs": True}})), checkpoint_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())  # refused before the first step: no checkpoint written
