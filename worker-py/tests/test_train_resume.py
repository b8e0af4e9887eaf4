"""Resume exactness: 6 steps straight == 3 steps, checkpoint, 3 more in a fresh process (losses and params)."""
from __future__ import annotations

import os

import torch

from byol_worker.core import checkpoint as ckpt
from byol_worker.train.trainer import train_in_process
from conftest import load_model_state, resolved, run_group, tiny_doc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# 64 samples, B 16: 4 steps per epoch, 1.5 epochs -> K = 6; the resumed half crosses the epoch boundary
SIX_STEPS = {"data": {"numSamples": 64}, "train": {"epochs": 1.5, "globalBatch": 16}}


def test_resume_in_fresh_process_continues_exactly(tmp_path):
    spec = resolved(tiny_doc(spec=SIX_STEPS))
    straight = train_in_process(spec, checkpoint_dir=str(tmp_path / "straight"))
    assert straight.exit_code == 0 and sorted(straight.losses) == [0, 1, 2, 3, 4, 5]

    first = train_in_process(spec, checkpoint_dir=str(tmp_path / "split"), stop_at_step=3)
    assert first.exit_code == 75 and first.step == 3
    assert [first.losses[k] for k in range(3)] == [straight.losses[k] for k in range(3)]
    mid = tmp_path / "split" / "step-000000003"
    state = ckpt.load(str(mid))["state"]
    assert state["step"] == 3 and state["world_size"] == 1 and state["epoch"] == 0.75

    codes, metrics, reports = run_group(spec, 1, tmp_path / "split", resume=str(mid))
    assert codes == [0]
    resumed = {m.step: m.loss for m in metrics}
    assert sorted(resumed) == [3, 4, 5]  # it did not redo steps 0-2
    for k in (3, 4, 5):
        assert abs(resumed[k] - straight.losses[k]) <= 1e-6, (k, resumed[k], straight.losses[k])
    a = load_model_state(tmp_path / "straight" / "step-000000006")
    b = load_model_state(tmp_path / "split" / "step-000000006")
    assert a.keys() == b.keys()
    for n in a:
        assert torch.allclose(a[n].float(), b[n].float(), rtol=0, atol=1e-6), n
    opt_a = ckpt.load(str(tmp_path / "straight" / "step-000000006"))["optimizer"]["state"]
    opt_b = ckpt.load(str(tmp_path / "split" / "step-000000006"))["optimizer"]["state"]
    for i in opt_a:
        assert torch.allclose(opt_a[i]["momentum_buffer"], opt_b[i]["momentum_buffer"], rtol=0, atol=1e-6)
    done = [r.checkpoint for r in reports if r.HasField("checkpoint")]
    assert [(c.step, c.ok) for c in done] == [(6, True)]
    last = [r.progress for r in reports if r.HasField("progress")][-1]
    assert last.step == 6 and dict(last.results) == {}  # kNN is off in this spec: no results


def test_cli_max_steps_then_resume_auto(tmp_path):
    """`python -m byol_worker train`: a user's YAML stops at --max-steps with a checkpoint (no hash: only the
    coordinator computes one); then the file `byolctl plan --resolved` writes for the same YAML resumes it (auto)
    as is, records the coordinator's hash, and finds the same resolved spec (no warning): both resolvers agree."""
    import json
    import subprocess
    import sys

    import yaml
    cli = os.path.join(REPO, "dist", "orchestrator", "src", "cli", "main.js")
    assert os.path.isfile(cli), f"{cli} missing: run `npm run build` (or bash scripts/setup.sh)"
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_doc(spec={"eval": {"knn": {"enabled": True, "k": 5}}})))
    cmd = [sys.executable, "-m", "byol_worker", "train", "--spec", str(spec_file), "--nproc", "1",
           "--checkpoint-dir", str(tmp_path / "ck")]
    first = subprocess.run(cmd + ["--max-steps", "2"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    assert [s for s, _ in ckpt.list_steps(str(tmp_path / "ck"))] == [2]
    state = ckpt.load(str(tmp_path / "ck" / "step-000000002"))["state"]
    baselines = state["baselines"]
    assert sorted(baselines) == ["knn_top1_random_init", "knn_top1_raw_pixels"]  # measured before step 0, kept
    assert state["spec_hash"] == ""
    out = subprocess.run(["node", cli, "plan", str(spec_file), "--resolved"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    (tmp_path / "resolved.json").write_text(out)
    doc = json.loads(out)
    cmd[5] = str(tmp_path / "resolved.json")
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # --resume auto is the default
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stderr and "step-000000002" in second.stderr
    assert "different spec" not in second.stderr
    assert [s for s, _ in ckpt.list_steps(str(tmp_path / "ck"))] == [2, 4]
    saved = ckpt.load(str(tmp_path / "ck" / "step-000000004"))
    assert saved["state"]["spec_hash"] == doc["specHash"]
    assert saved["spec"] == {k: v for k, v in doc.items() if k != "specHash"}
    top1 = float(second.stdout.split("knn_top1")[1].split()[0])
    assert 0.0 <= top1 <= 1.0
    # the resumed run reports the baselines the first run measured, not new ones
    assert f"knn_top1_random_init {baselines['knn_top1_random_init']:.4f}" in second.stdout
    assert f"knn_top1_raw_pixels {baselines['knn_top1_raw_pixels']:.4f}" in second.stdout
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "missing.yaml")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr


def test_resume_warns_naming_the_fields_that_differ(tmp_path, caplog):
    """The check compares the recorded resolved spec, so a standalone run (no hash) is checked too."""
    first = train_in_process(resolved(tiny_doc(spec=SIX_STEPS)), checkpoint_dir=str(tmp_path), stop_at_step=2)
    assert first.exit_code == 75
    changed = resolved(tiny_doc(spec={**SIX_STEPS, "train": {**SIX_STEPS["train"], "seed": 4}}))
    with caplog.at_level("WARNING", logger="byol.trainer"):
        again = train_in_process(changed, checkpoint_dir=str(tmp_path), resume=str(tmp_path / "step-000000002"))
    assert again.exit_code == 0
    assert any("different spec (differs in spec.train.seed)" in r.getMessage() for r in caplog.records)
