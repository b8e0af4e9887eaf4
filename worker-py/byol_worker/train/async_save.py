"""Background checkpoint saves: a copy into shared memory, then a separate, idle-priority writer process.

The training loop stalls only for `AsyncSaver.save`'s copy of the state into a shared staging buffer (an
anonymous memfd, reused from save to save, so no page faults after the first). Most of that copy need not
stall at all: parameters and optimizer state change only in the optimizer step and the EMA update, so the
caller can name them `stable` and they are copied by a background thread while the next step's forward and
backward run; the caller calls `fence()` before it changes them (TrainStep does, before `optimizer.step()`).
Batch-norm buffers change in the forward pass, so they and everything else are copied before `save` returns.
A writer process (started at the first save, with its own GIL, at SCHED_IDLE priority) rebuilds the tensors from that buffer and writes
them with `checkpoint.write` (temporary folder, fsync, sha256 manifest, rename). A writer *thread* is not
used: on a busy CPU its GIL and cores compete with the loop, and bench/py/checkpoint_stall.py measured it
stalling training more than a synchronous save. Whenever the loop waits for a save (the last one, a
preemption save, a save waiting for the previous one) the writer is raised to normal priority for that
wait, since on a busy host an idle-priority writer can starve (writer_priority.py, with its fallback).

The writer runs in its own process group, so a SIGTERM or Ctrl-C sent to the trainer's group does not
kill a save in flight, and it exits when its stdin closes, i.e. when the trainer closes the saver or dies.
(Not its own session: with the kernel's autogroup scheduling, a new session would get its own equal share of
the CPU, whatever its priority.)
"""
from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..core.checkpoint import SaveResult, Snapshot
from .save_writer import Slot, aliased, map_buffer
from .writer_priority import WriterPriority

log = logging.getLogger("byol.checkpoint")

_ALIGN = 64

# Not `-m byol_worker.train.save_writer`: that would load the module twice (as __main__ too), and the Slot
# objects the trainer pickles would not be instances of the writer's Slot.
_WRITER_MAIN = ("import sys; from byol_worker.train.logging_setup import setup_logging; setup_logging(); "
                "from byol_worker.train.save_writer import writer_main; "
                "sys.exit(writer_main(int(sys.argv[1]), sys.argv[2]))")


def _layout(obj: Any, offset: list[int]) -> Any:
    """`obj` with every tensor replaced by a Slot; advances offset[0] past each tensor (aligned)."""
    if isinstance(obj, torch.Tensor):
        slot = Slot(offset[0], obj.numel(), obj.dtype, tuple(obj.shape))
        offset[0] += -(-obj.numel() * obj.element_size() // _ALIGN) * _ALIGN
        return slot
    if isinstance(obj, dict):
        return {k: _layout(v, offset) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_layout(v, offset) for v in obj)
    return obj


def _pairs(src: Any, dst: Any, out: list) -> list:
    """(source, staging view) for every tensor of `src`, in order."""
    if isinstance(dst, torch.Tensor):
        out.append((src.detach(), dst))
    elif isinstance(dst, dict):
        for k, v in dst.items():
            _pairs(src[k], v, out)
    elif isinstance(dst, (list, tuple)):
        for x, v in zip(src, dst):
            _pairs(x, v, out)
    return out


_SAME_SIZE_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _copy_cpu(src: torch.Tensor, dst: torch.Tensor) -> None:
    """dst <- src on one core (numpy, GIL released). Not `copy_`: from a thread of its own, an ATen copy would
    start a second OpenMP team, and with more OpenMP threads than cores libgomp stops spinning between parallel
    regions, so training then leaves gaps that the writer fills (bench/py/checkpoint_stall.py, 2 threads)."""
    as_int = _SAME_SIZE_INT.get(src.element_size())
    if as_int is None or src.is_complex():
        dst.copy_(src)
        return
    np.copyto(dst.view(as_int).numpy(), src.view(as_int).numpy())  # a view with the same item size: any strides


def _copy_later(pairs: list, after: Any) -> None:
    """The background part of a save. CUDA sources are copied on a side stream that first waits for `after`
    (the training stream as it was at save time), so the copies overlap the next step's kernels."""
    side = None
    if after is not None:
        side = torch.cuda.Stream(after.device)
        side.wait_stream(after)
    with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
        for src, dst in pairs:
            if src.is_cuda:
                dst.copy_(src)  # into pageable memory: returns when the bytes are there
            else:
                _copy_cpu(src, dst)
    if side is not None:
        side.synchronize()


class AsyncSaver:
    """At most one save in flight: `save()` waits for the previous one, stages the state, and returns.

    `on_done(result)` runs on a listener thread when a save completes or fails (ok=False with the error);
    a failure never raises into the training loop. `close()` stops the writer process.
    """

    def __init__(self, on_done: Callable[[SaveResult], None] | None = None) -> None:
        self.on_done = on_done
        self.results: list[SaveResult] = []
        self._fd = -1
        self._size = 0
        self._mm: mmap.mmap | None = None
        self._proc: subprocess.Popen | None = None
        self._priority: WriterPriority | None = None
        self._listener: threading.Thread | None = None
        self._copied = threading.Event()
        self._copied.set()

    def start(self) -> None:
        """Start the writer now (optional), so that the first save does not wait for it to import torch."""
        self._ensure_writer()

    def save(self, snap: Snapshot, checkpoint_dir: str, stable: Iterable[torch.Tensor] = ()) -> None:
        """Copy `snap` (live training state is fine) into the staging buffer, then hand it to the writer.

        Tensors of `snap` that share memory with a tensor in `stable` are copied in the background: the
        caller must not change them before `fence()` returns. The rest is copied before this returns.
        """
        self.wait()
        step = snap.step
        payload = {"model": snap.model, "optimizer": snap.optimizer, "rng": snap.rng}
        end = [0]
        skeleton = _layout(payload, end)
        self._ensure_buffer(max(end[0], _ALIGN))
        later_ptrs = {t.data_ptr() for t in stable if t.device.type in ("cpu", "cuda") and t.numel()}
        now, later = [], []
        for src, dst in _pairs(payload, aliased(skeleton, self._mm), []):
            (later if src.numel() and src.data_ptr() in later_ptrs else now).append((src, dst))
        for src, dst in now:
            dst.copy_(src)
        after = next((torch.cuda.current_stream(s.device) for s, _ in later if s.is_cuda), None)
        self._ensure_writer()
        msg = {"step": step, "size": self._size, "skeleton": skeleton, "state": snap.state,
               "spec": snap.spec, "dir": checkpoint_dir}
        self._copied.clear()
        # the listener sends too: a big message fills the pipe until the writer reads it
        self._listener = threading.Thread(target=self._talk, args=(msg, time.monotonic(), later, after),
                                          name=f"ckpt-{step}", daemon=True)
        self._listener.start()

    def fence(self) -> None:
        """Block until the background copy of the last save's `stable` tensors is done (usually already)."""
        self._copied.wait()

    @property
    def busy(self) -> bool:
        """A save is in flight."""
        return self._listener is not None and self._listener.is_alive()

    def wait(self) -> SaveResult | None:
        """Block until the save in flight (if any) is done; return the last result."""
        if self._listener is not None:
            if self._listener.is_alive() and self._priority is not None:
                with self._priority.urgent():  # the loop waits: the writer must not starve now
                    self._listener.join()
            self._listener.join()
            self._listener = None
        return self.results[-1] if self.results else None

    def close(self) -> None:
        self.wait()
        self._stop_writer()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------------ internals

    def _ensure_fd(self) -> None:
        if self._fd < 0:  # anonymous shared memory (Linux); elsewhere an unlinked temporary file
            self._fd = (os.memfd_create("byol-checkpoint-staging", 0) if hasattr(os, "memfd_create")
                        else os.dup(tempfile.TemporaryFile().fileno()))

    def _ensure_buffer(self, need: int) -> None:
        if need <= self._size:
            return
        size = need + need // 8  # headroom: optimizer state appears after the first step
        self._ensure_fd()
        os.ftruncate(self._fd, size)  # the writer maps the new size when a request names it
        if self._mm is not None:
            self._mm.close()
        self._mm = map_buffer(self._fd, size)
        self._size = size

    def _ensure_writer(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._ensure_fd()
        if self._priority is None:
            self._priority = WriterPriority()
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self._proc = subprocess.Popen([sys.executable, "-c", _WRITER_MAIN, str(self._fd), self._priority.mode],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(self._fd,), env=env,
                                      process_group=0)
        self._priority.attach(self._proc.pid)

    def _stop_writer(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def _talk(self, msg: dict, t0: float, later: list, after: Any) -> None:
        """Finish the copy, send one save request to the writer and wait for its answer (listener thread)."""
        proc, step, checkpoint_dir = self._proc, msg["step"], msg["dir"]
        error = None
        try:
            _copy_later(later, after)  # releases the GIL inside each copy
        except Exception as e:  # e.g. a CUDA error: this save fails, training decides what to do
            error = f"staging copy failed: {type(e).__name__}: {e}"
        self._copied.set()
        if error is not None:
            self._finish(SaveResult(step=step, ok=False, error=error), t0)
            return
        try:
            self._priority.background()
            pickle.dump(msg, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.flush()
            res = pickle.load(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            code = proc.wait()
            # its temporary folder is garbage now; a folder without a manifest is never a checkpoint anyway
            shutil.rmtree(os.path.join(checkpoint_dir, f".tmp-step-{step:09d}-{proc.pid}"), ignore_errors=True)
            res = SaveResult(step=step, ok=False, error=f"checkpoint writer process exited with code {code} "
                                                        "during the save (killed? out of memory?)")
        self._finish(res, t0)

    def _finish(self, res: SaveResult, t0: float) -> None:
        res.seconds = time.monotonic() - t0
        self.results.append(res)
        if self.on_done is not None:
            try:
                self.on_done(res)
            except Exception:
                log.exception("checkpoint report callback failed")
