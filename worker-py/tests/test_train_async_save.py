"""Background saves (byol_worker.train.async_save): what the writer process writes is what training held."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from byol_worker.core import checkpoint as ckpt
from byol_worker.train.async_save import AsyncSaver
from byol_worker.core.model import build_model
from byol_worker.core.optim import build_optimizer
from byol_worker.core.step import TrainStep
from byol_worker.core.precision import resolve
from byol_worker.train.writer_priority import NICE_FALLBACK, can_switch


def _trained_state():
    """A tiny BYOL model and LARS optimizer after one step: float, int64 and 0-dim tensors, momentum buffers."""
    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18-cifar", "width": 0.0625, "projector": {"hiddenDim": 16, "outDim": 8},
                         "predictor": {"hiddenDim": 16}}, 32)
    opt = build_optimizer(model, {"name": "lars", "weightDecay": 1e-6, "trustCoefficient": 1e-3})
    views = [(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))]
    TrainStep(model, opt, resolve("fp32", False, torch.device("cpu"))).run(views, lr=0.1, tau=0.99)
    return model, opt


def _snap(step, model, opt, extra=None):
    rng = {"world_size": 1, "ranks": [{"torch": torch.get_rng_state(), "bf16": torch.ones(3, dtype=torch.bfloat16)}]}
    return ckpt.Snapshot(step, model.state_dict() | (extra or {}), opt.state_dict(), rng, {"world_size": 1},
                         {"spec": {"x": 1}})


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def test_background_save_round_trips_the_live_state(tmp_path):
    model, opt = _trained_state()
    saver = AsyncSaver()
    try:
        snap = _snap(1, model, opt)
        saver.save(snap, str(tmp_path))
        expected = ckpt.snapshot(1, snap.model, snap.optimizer, snap.rng, snap.state, snap.spec)  # copy of then
        with torch.no_grad():  # training goes on mutating the live tensors while the writer works
            for p in model.parameters():
                p.add_(1.0)
        res = saver.wait()
        assert res.ok and res.step == 1, res
        loaded = ckpt.load(res.path)
        _assert_same(loaded["model"], expected.model)
        _assert_same(loaded["optimizer"], expected.optimizer)
        _assert_same(loaded["rng"], expected.rng)
        assert loaded["state"]["step"] == 1
        writer = saver._proc
        assert os.sched_getscheduler(writer.pid) == os.SCHED_IDLE   # takes idle CPU only
        assert os.getpgid(writer.pid) != os.getpgid(0)              # a SIGTERM to our group does not reach it

        # a larger state later (the staging buffer grows) and the same writer process keeps working
        saver.save(_snap(2, model, opt, {"extra": torch.arange(100_000)}), str(tmp_path))
        res2 = saver.wait()
        assert res2.ok and saver._proc.pid == writer.pid
        assert torch.equal(ckpt.load(res2.path)["model"]["extra"], torch.arange(100_000))
    finally:
        saver.close()
    assert writer.poll() is not None  # close() ends the writer


def test_killed_writer_is_reported_and_replaced(tmp_path):
    model, opt = _trained_state()
    results = []
    saver = AsyncSaver(on_done=results.append)
    try:
        saver.save(_snap(1, model, opt), str(tmp_path))
        os.kill(saver._proc.pid, signal.SIGKILL)  # before it can answer: it is still starting up
        res = saver.wait()
        assert not res.ok and "exited with code -9" in res.error, res
        saver.save(_snap(2, model, opt), str(tmp_path))  # a new writer takes over
        assert saver.wait().ok
    finally:
        saver.close()
    assert [(r.step, r.ok) for r in results] == [(1, False), (2, True)]
    assert sorted(os.listdir(tmp_path)) == ["step-000000002"]  # no .tmp-* left behind


def test_stable_tensors_are_copied_during_the_next_step_and_saved_as_they_were(tmp_path):
    """Parameters and optimizer state (stable) are copied in the background until fence(); everything else
    (BN buffers, which the next forward changes) before save() returns. Both land as they were at save time."""
    model, opt = _trained_state()
    odd = {"bf16": torch.randn(5, 7).to(torch.bfloat16), "strided": torch.randn(6, 4).t(),
           "channels_last": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)}
    saver = AsyncSaver()
    step = TrainStep(model, opt, resolve("fp32", False, torch.device("cpu")))
    stable = step.update_only_tensors() + list(odd.values())
    order = []
    step.before_update = lambda: (saver.fence(), order.append([p.clone() for p in model.parameters()]))
    try:
        snap = _snap(1, model, opt, odd)
        expected = ckpt.snapshot(1, snap.model, snap.optimizer, snap.rng, snap.state, snap.spec)
        before = [p.clone() for p in model.parameters()]
        saver.save(snap, str(tmp_path), stable=stable)
        step.run([(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))], lr=0.1, tau=0.99)  # forward changes BN
        assert all(torch.equal(a, b) for a, b in zip(order[0], before))  # the fence came before the update
        assert not torch.equal(model.state_dict()["online_encoder.bn1.running_mean"],
                               expected.model["online_encoder.bn1.running_mean"])
        res = saver.wait()
        assert res.ok, res
        loaded = ckpt.load(res.path)
        _assert_same(loaded["model"], expected.model)
        _assert_same(loaded["optimizer"], expected.optimizer)
    finally:
        saver.close()


def _policies(pid):
    return {os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policies are Linux")
def test_writer_is_idle_in_the_background_and_normal_while_the_loop_waits(tmp_path):
    model, opt = _trained_state()
    saver = AsyncSaver()
    try:
        saver.save(_snap(1, model, opt), str(tmp_path))
        assert saver.wait().ok
        pid = saver._proc.pid
        if not can_switch():  # an unprivileged run: the documented fallback, never starved
            assert saver._priority.mode == "nice" and os.getpriority(os.PRIO_PROCESS, pid) == NICE_FALLBACK
            return
        assert saver._priority.mode == "switch"
        assert _policies(pid) == {os.SCHED_IDLE}  # lowered again after the wait
        with saver._priority.urgent():
            assert _policies(pid) == {os.SCHED_OTHER}
        assert _policies(pid) == {os.SCHED_IDLE}
        # A real wait: while the loop waits in wait() for a save of 64 MB more, the writer is never idle.
        seen, done = [], threading.Event()
        saver.save(_snap(2, model, opt, {"big": torch.randn(16 * 2**20)}), str(tmp_path))

        def sample():  # under the priority's lock: the count and the policy change together there
            while not done.is_set():
                with saver._priority._lock:
                    if saver._priority._waiting:
                        seen.append(_policies(pid))
                time.sleep(0.001)
        t = threading.Thread(target=sample)
        t.start()
        assert saver.wait().ok
        done.set()
        t.join()
        assert seen and all(p == {os.SCHED_OTHER} for p in seen)
    finally:
        saver.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become another user")
def test_an_unprivileged_user_cannot_leave_sched_idle_and_gets_the_nice_fallback():
    code = ("import logging, os, sys; logging.basicConfig(level=logging.INFO); sys.path.insert(0, sys.argv[1]); "
            "from byol_worker.train.writer_priority import *; "
            "w = WriterPriority(); lower_self(w.mode); print(can_switch(), w.mode, os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code,
                          os.path.join(os.path.dirname(__file__), "..")], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "nice", str(NICE_FALLBACK)], out.stderr
    assert "ulimit -e 20" in out.stderr  # the log says why and what would allow idle priority
