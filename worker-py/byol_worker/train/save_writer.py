"""The checkpoint writer process (async_save.py starts it): it maps the trainer's staging buffer, rebuilds each
save's tensors as views of it, and writes them with `checkpoint.write`, answering each request on stdout."""
from __future__ import annotations

import mmap
import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any

import torch

from ..core.checkpoint import SaveResult, Snapshot, write
from .writer_priority import lower_self


@dataclass(frozen=True)
class Slot:
    """Where one tensor lies in the staging buffer."""
    offset: int
    numel: int
    dtype: torch.dtype
    shape: tuple


def aliased(skeleton: Any, mm: mmap.mmap) -> Any:
    """The object with each tensor a view of exactly its own bytes of the buffer: no copy, and torch.save
    writes those bytes alone (a view's storage is its slot, not the whole buffer)."""
    if isinstance(skeleton, Slot):
        if skeleton.numel == 0:
            return torch.empty(skeleton.shape, dtype=skeleton.dtype)
        t = torch.frombuffer(mm, dtype=skeleton.dtype, count=skeleton.numel, offset=skeleton.offset)
        return t.view(skeleton.shape)
    if isinstance(skeleton, dict):
        return {k: aliased(v, mm) for k, v in skeleton.items()}
    if isinstance(skeleton, (list, tuple)):
        return type(skeleton)(aliased(v, mm) for v in skeleton)
    return skeleton


def map_buffer(fd: int, size: int) -> mmap.mmap:
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))  # no page faults later


def writer_main(fd: int, mode: str = "nice") -> int:
    """The writer process: read save requests from stdin, answer each with a SaveResult on stdout."""
    # a lower priority from here on, not for its start: importing torch at idle priority on a busy machine could
    # take longer than a checkpoint interval. In "switch" mode the parent sets it per request (writer_priority.py).
    lower_self(mode)
    torch.set_num_threads(1)
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # results go here; fd 1 becomes stderr, so no stray print corrupts them
    os.dup2(2, 1)
    mm, size = None, 0
    while True:
        payload = None
        try:
            msg = pickle.load(inp)
        except EOFError:
            return 0
        if msg["size"] != size:
            if mm is not None:
                mm.close()
            mm, size = map_buffer(fd, msg["size"]), msg["size"]
        try:
            payload = aliased(msg["skeleton"], mm)
            res = write(Snapshot(step=msg["step"], model=payload["model"], optimizer=payload["optimizer"],
                                 rng=payload["rng"], state=msg["state"], spec=msg["spec"]), msg["dir"])
        except Exception as e:  # ENOSPC, EACCES, ENOTDIR ...: reported, training goes on
            res = SaveResult(step=msg["step"], ok=False, error=f"{type(e).__name__}: {e}")
        payload = None  # release the views before the buffer may be remapped
        pickle.dump(res, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

