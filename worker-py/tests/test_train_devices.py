"""Device selection: what a trainer does with spec.resources.device on a host without that device."""
import importlib.util

import pytest
import torch

from byol_worker.core.device import pick_device, resolve_device_name
from byol_worker.train.launch_local import local_device_kind


def test_cpu_and_auto_resolve_here():
    assert pick_device("cpu").type == "cpu"
    dev = pick_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert dev.type == "cpu" or dev.index is not None  # torch.cuda.set_device refuses an unindexed device


@pytest.mark.parametrize("want, gpus, local_rank, expected", [
    ("auto", 0, 0, "cpu"), ("", 0, 3, "cpu"), ("cpu", 4, 1, "cpu"), ("cpu:0", 4, 1, "cpu"),
    ("auto", 1, 0, "cuda:0"),     # a GPU host with device auto: an indexed device, never bare "cuda"
    ("cuda", 1, 0, "cuda:0"),     # device: cuda in process (train_in_process, knn, bench)
    ("cuda", 8, 3, "cuda:3"),     # the local rank picks the GPU (standalone --nproc, torchrun)
    ("auto", 2, 5, "cuda:1"),
    ("cuda:2", 4, 0, "cuda:2"),   # an assignment's device_id wins over the local rank
])
def test_device_names_resolve_to_an_indexed_device(want, gpus, local_rank, expected):
    assert resolve_device_name(want, gpus, local_rank) == expected


@pytest.mark.parametrize("want, gpus, message", [
    ("cuda", 0, r"CUDA is not available.*spec.resources.device: cpu"),
    ("cuda:4", 2, r"2 CUDA device\(s\), cuda:0..cuda:1"),
    ("mps", 0, r"only cpu, cuda and xla"),
    ("gpu", 1, r"device 'gpu'"),
])
def test_unusable_device_names_say_what_to_change(want, gpus, message):
    with pytest.raises(ValueError, match=message):
        resolve_device_name(want, gpus)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_standalone_launcher_wants_one_gpu_per_rank():
    assert local_device_kind("auto", 2) == "cpu"
    with pytest.raises(ValueError, match=r"CUDA is not available"):
        local_device_kind("cuda", 1)


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla installed here")
def test_xla_without_torch_xla_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"device 'xla'.*torch_xla is not installed.*spec.resources.device"):
        pick_device("xla")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_without_cuda_says_what_to_change():
    with pytest.raises(ValueError, match=r"CUDA is not available.*spec.resources.device: cpu"):
        pick_device("cuda:0")


def test_a_resolved_spec_trains_in_process_without_pyzmq_jsonschema_or_grpc_stubs(tmp_path):
    """A bare GPU image may lack pyzmq and jsonschema (no wheels for its Python): in-process training of a spec
    resolved elsewhere, its kNN and its checkpoints need neither, nor the gRPC stubs."""
    import json
    import subprocess
    import sys

    from conftest import resolved, tiny_doc
    spec = tmp_path / "resolved.json"
    spec.write_text(json.dumps(resolved(tiny_doc(spec={"eval": {"knn": {"enabled": True, "k": 5}}}))))
    code = (
        "import sys, json\n"
        "for m in ('zmq', 'jsonschema', 'grpc'): sys.modules[m] = None  # import fails as if not installed\n"
        "from byol_worker.train.trainer import train_in_process\n"
        f"r = train_in_process(json.load(open({str(spec)!r})), checkpoint_dir={str(tmp_path / 'ck')!r})\n"
        "assert 'byol.v1.agent_pb2_grpc' not in sys.modules\n"
        "print(r.exit_code, r.step, r.knn_top1 is not None, sorted(r.baselines))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "0 4 True ['knn_top1_random_init', 'knn_top1_raw_pixels']"
