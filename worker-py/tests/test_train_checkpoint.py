"""Checkpoint layout, verification, failed writes and resume errors (docs/internals.md "Checkpoints")."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from byol_worker.core import checkpoint as ckpt
from byol_worker.train.async_save import AsyncSaver
from byol_worker.train.trainer import BadInput, train_in_process
from conftest import resolved, tiny_doc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _snap(step: int) -> ckpt.Snapshot:
    return ckpt.snapshot(step, {"w": torch.arange(6.0).reshape(2, 3)}, {"state": {}, "param_groups": []},
                         {"world_size": 1, "ranks": [{"torch": torch.get_rng_state()}]}, {"world_size": 1},
                         {"spec": {"x": 1}})


def test_write_layout_manifest_and_round_trip(tmp_path):
    res = ckpt.write(_snap(7), str(tmp_path))
    assert res.ok and res.path == str(tmp_path / "step-000000007")
    names = sorted(os.listdir(res.path))
    assert names == sorted(ckpt.PAYLOAD + (ckpt.MANIFEST,))
    raw = (tmp_path / "step-000000007" / "manifest.json").read_bytes()
    manifest = json.loads(raw)
    assert manifest["step"] == 7
    for name in ckpt.PAYLOAD:  # every file's sha256 and size, computed here independently
        data = (tmp_path / "step-000000007" / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert res.sha256 == hashlib.sha256(raw).hexdigest()
    assert res.bytes == sum(os.path.getsize(os.path.join(res.path, n)) for n in names)
    loaded = ckpt.load(res.path)
    assert torch.equal(loaded["model"]["w"], torch.arange(6.0).reshape(2, 3))
    assert loaded["state"]["step"] == 7 and loaded["spec"] == {"spec": {"x": 1}}
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_checkpoints_are_private_to_their_owner(tmp_path):
    job_dir = tmp_path / "job"  # created by the save, as the trainer's job folder is
    res = ckpt.write(_snap(3), str(job_dir))
    assert os.stat(job_dir).st_mode & 0o777 == 0o700
    assert os.stat(res.path).st_mode & 0o777 == 0o700
    assert {n: os.stat(os.path.join(res.path, n)).st_mode & 0o777 for n in os.listdir(res.path)} == \
        {n: 0o600 for n in ckpt.PAYLOAD + (ckpt.MANIFEST,)}


def test_corrupt_file_is_named_and_latest_good_skips_it(tmp_path):
    good = ckpt.write(_snap(1), str(tmp_path)).path
    bad = ckpt.write(_snap(2), str(tmp_path)).path
    model = os.path.join(bad, "model.pt")
    with open(model, "r+b") as f:  # flip one byte in the middle
        f.seek(os.path.getsize(model) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ckpt.CheckpointError, match=r"model\.pt.*sha256") as e:
        ckpt.load(bad)
    assert e.value.file == "model.pt"
    assert ckpt.latest_good(str(tmp_path)) == good
    os.remove(os.path.join(good, "manifest.json"))
    with pytest.raises(ckpt.CheckpointError, match="manifest.json"):
        ckpt.verify(good)
    assert ckpt.latest_good(str(tmp_path)) is None
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.verify(str(tmp_path / "step-000000099"))


def test_prune_keeps_last_and_every(tmp_path):
    for s in (2, 4, 6, 8, 10):
        ckpt.write(_snap(s), str(tmp_path))
    removed = ckpt.prune(str(tmp_path), keep_last=2, keep_every=4)
    assert sorted(os.path.basename(p) for p in removed) == ["step-000000002", "step-000000006"]
    assert [s for s, _ in ckpt.list_steps(str(tmp_path))] == [4, 8, 10]


def test_retention_matches_the_shared_vectors():
    """test/vectors/retention.json, which TypeScript's retention.ts is checked against too."""
    with open(os.path.join(REPO, "test", "vectors", "retention.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    assert len(cases) >= 10
    for c in cases:
        gone = ckpt.steps_to_delete(c["steps"], c["keepLast"], c["keepEvery"])
        assert sorted(set(c["steps"]) - set(gone)) == c["kept"], c


def test_async_saver_failure_reports_and_removes_temp(tmp_path):
    results = []
    saver = AsyncSaver(on_done=results.append)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    saver.save(_snap(3), str(not_a_dir))           # cannot even make the folder
    blocked = tmp_path / "ck"
    blocked.mkdir()
    (blocked / "step-000000004").write_text("a file where the folder must go")
    saver.save(_snap(4), str(blocked))             # fails at the rename, after writing everything
    saver.save(_snap(5), str(blocked))             # the next save still works
    saver.close()
    assert [(r.step, r.ok) for r in results] == [(3, False), (4, False), (5, True)]
    assert "NotADirectoryError" in results[0].error or "FileExistsError" in results[0].error
    assert results[1].error
    assert sorted(os.listdir(blocked)) == ["step-000000004", "step-000000005"]  # no .tmp-* left
    ckpt.verify(str(blocked / "step-000000005"))


def test_training_goes_on_when_every_save_fails(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    spec = resolved(tiny_doc(spec={"checkpoint": {"everySteps": 1}}))
    r = train_in_process(spec, checkpoint_dir=str(not_a_dir))
    assert r.step == 4 and sorted(r.losses) == [0, 1, 2, 3]   # all K steps ran
    assert [c.ok for c in r.checkpoints] == [False] * 4
    assert r.exit_code == 1 and "could not be written" in r.message  # no final checkpoint: not a success
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_resume_errors_name_the_path_or_file(tmp_path):
    spec = resolved(tiny_doc())
    with pytest.raises(BadInput, match="step-000000042.*not found"):
        train_in_process(spec, checkpoint_dir=str(tmp_path), resume=str(tmp_path / "step-000000042"))
    r = train_in_process(spec, checkpoint_dir=str(tmp_path), stop_at_step=2)
    assert r.exit_code == 75
    path = tmp_path / "step-000000002"
    data = bytearray((path / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / "model.pt").write_bytes(bytes(data))
    with pytest.raises(BadInput, match=r"model\.pt"):
        train_in_process(spec, checkpoint_dir=str(tmp_path), resume=str(path))


def test_trainer_process_exits_2_with_reason_on_last_stderr_line(tmp_path):
    from byol_worker.train.control import assignment_file
    from byol_worker.proto import agent_pb2
    from byol_worker.core.schedule_plan import plan
    from byol_worker.train.trainer import schedule_from_plan
    spec = resolved(tiny_doc())
    a = agent_pb2.Assignment(job_id="j", generation=1, rank=0, world_size=1, spec_json=json.dumps(spec),
                             schedule=schedule_from_plan(plan(spec, 1, 64)), checkpoint_dir=str(tmp_path),
                             resume_checkpoint=str(tmp_path / "step-000000005"))
    f = tmp_path / "assignment.json"
    f.write_text(json.dumps(assignment_file(a)))
    p = subprocess.run([sys.executable, "-m", "byol_worker", "trainer", "--assignment", str(f)],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, BYOL_DEVICE="cpu"))
    assert p.returncode == 2
    assert "step-000000005" in p.stderr.strip().splitlines()[-1]
