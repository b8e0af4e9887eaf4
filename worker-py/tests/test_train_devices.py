"""Device selection: what a trainer does with spec.resources.device on a host without that device."""
import importlib.util

import pytest
import torch

from byol_worker.distributed import pick_device


def test_cpu_and_auto_resolve_here():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla installed here")
def test_xla_without_torch_xla_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"device 'xla'.*torch_xla is not installed.*spec.resources.device"):
        pick_device("xla")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_without_cuda_says_what_to_change():
    with pytest.raises(ValueError, match=r"CUDA is not available.*spec.resources.device: cpu"):
        pick_device("cuda:0")
