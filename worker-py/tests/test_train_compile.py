"""spec.train.compile: the trainer's torch.compile path (rank_setup.py) trains as the eager one does.

The compile itself takes a minute or more on a CPU (inductor writes and builds C++ kernels), so this is one small
run: two fp32 steps of a tiny network, compiled against eager from the same weights and data.
"""
import math

import pytest
from torch._dynamo.utils import counters

from byol_worker.train.trainer import train_in_process
from conftest import resolved, tiny_doc


def _run(tmp_path, compile_: bool):
    doc = tiny_doc(spec={"data": {"numSamples": 32}, "model": {"width": 0.0625},
                         "train": {"compile": compile_, "epochs": 1, "globalBatch": 16}})
    r = train_in_process(resolved(doc), checkpoint_dir=str(tmp_path / f"compile-{compile_}"))
    assert r.exit_code == 0 and r.step == 2, (r.exit_code, r.step, r.message)
    return [r.losses[k] for k in sorted(r.losses)]


@pytest.mark.slow
def test_compiled_online_network_trains_as_eager(tmp_path):
    eager = _run(tmp_path, False)
    counters.clear()
    compiled = _run(tmp_path, True)
    assert counters["stats"]["unique_graphs"] > 0, "train.compile: true compiled nothing"
    # step 2's loss also checks the compiled backward: it is computed from weights that step 1's gradients changed
    for a, b in zip(eager, compiled):
        assert math.isclose(a, b, rel_tol=1e-4), (eager, compiled)
    assert eager[0] != eager[1]
