"""Checkpoints exactly as docs/internals.md "Checkpoints" fixes them.

`<checkpoint_dir>/step-<k:09d>/` holds model.pt, optimizer.pt, rng.pt, state.json, spec.json and
manifest.json (sha256 and size of every other file). It is written into `.tmp-step-<k>-<pid>/`, every file
and the folder fsynced, then renamed: a folder without a valid manifest is not a checkpoint.
Saves in the background go through train/async_save.AsyncSaver. In core/ because training writes and resumes
from these folders and export (evaluate/) reads them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any, Callable

import torch

log = logging.getLogger("byol.checkpoint")

STEP_RE = re.compile(r"^step-(\d{9})$")
PAYLOAD = ("model.pt", "optimizer.pt", "rng.pt", "state.json", "spec.json")
MANIFEST = "manifest.json"


class CheckpointError(Exception):
    """A checkpoint that is missing, incomplete or corrupt; names the folder and the bad file."""

    def __init__(self, path: str, message: str, file: str = "") -> None:
        self.path, self.file = path, file
        where = os.path.join(path, file) if file else path
        super().__init__(f"checkpoint {where}: {message}")


def step_dir_name(step: int) -> str:
    return f"step-{step:09d}"


@dataclass
class Snapshot:
    """Everything a checkpoint holds: CPU copies for `write`; live state for AsyncSaver.save, which copies it."""
    step: int
    model: dict
    optimizer: dict
    rng: dict
    state: dict
    spec: dict


@dataclass
class SaveResult:
    step: int
    ok: bool
    path: str = ""
    bytes: int = 0
    sha256: str = ""
    error: str = ""
    seconds: float = 0.0


def _to_cpu(x: Any) -> Any:
    """Deep copy with every tensor cloned onto the CPU (training goes on mutating the originals)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x


def snapshot(step: int, model_state: dict, optimizer_state: dict, rng: dict, state: dict,
             spec: dict) -> Snapshot:
    return Snapshot(step=step, model=_to_cpu(model_state), optimizer=_to_cpu(optimizer_state),
                    rng=_to_cpu(rng), state=state, spec=spec)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _HashingFile:
    """A write-only file that hashes what passes through, so a save never reads its files back."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.bytes = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _write_synced(path: str, writer: Callable[[Any], None]) -> dict:
    """Write, flush and fsync one file; return its manifest entry {sha256, bytes}."""
    # 0600: checkpoints hold the model and its data's statistics; only their owner reads them
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as raw:
        f = _HashingFile(raw)
        writer(f)
        f.flush()
        os.fsync(raw.fileno())
    return {"sha256": f.sha.hexdigest(), "bytes": f.bytes}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(snap: Snapshot, checkpoint_dir: str) -> SaveResult:
    """Write a snapshot as `step-<k>/`; on any failure remove the temp folder and raise OSError."""
    final = os.path.join(checkpoint_dir, step_dir_name(snap.step))
    tmp = os.path.join(checkpoint_dir, f".tmp-{step_dir_name(snap.step)}-{os.getpid()}")
    try:
        os.makedirs(checkpoint_dir, mode=0o700, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o700)
        files = {}
        for name, obj in (("model.pt", snap.model), ("optimizer.pt", snap.optimizer), ("rng.pt", snap.rng)):
            files[name] = _write_synced(os.path.join(tmp, name), lambda f, o=obj: torch.save(o, f))
        for name, obj in (("state.json", dict(snap.state, step=snap.step)), ("spec.json", snap.spec)):
            data = json.dumps(obj, indent=1, sort_keys=True).encode()
            files[name] = _write_synced(os.path.join(tmp, name), lambda f, d=data: f.write(d))
        manifest = json.dumps({"files": files, "step": snap.step}, indent=1, sort_keys=True).encode()
        _write_synced(os.path.join(tmp, MANIFEST), lambda f: f.write(manifest))
        _fsync_dir(tmp)
        if os.path.exists(final):
            # the same step saved twice (e.g. a stop right after a resume): keep one complete copy
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(checkpoint_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(v["bytes"] for v in files.values()) + len(manifest)
    return SaveResult(step=snap.step, ok=True, path=final, bytes=total,
                      sha256=hashlib.sha256(manifest).hexdigest())


def verify(path: str) -> dict:
    """Check the manifest and every file's size and sha256; return the manifest or raise CheckpointError."""
    if not os.path.isdir(path):
        raise CheckpointError(path, "not found (no such folder)")
    mpath = os.path.join(path, MANIFEST)
    try:
        with open(mpath, "rb") as f:
            manifest = json.loads(f.read())
        files = manifest["files"]
    except FileNotFoundError:
        raise CheckpointError(path, "missing; the checkpoint is incomplete", MANIFEST) from None
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(path, f"unreadable manifest ({e})", MANIFEST) from None
    for name in PAYLOAD:
        if name not in files:
            raise CheckpointError(path, "not listed in the manifest", name)
        fpath = os.path.join(path, name)
        if not os.path.isfile(fpath):
            raise CheckpointError(path, "missing", name)
        if os.path.getsize(fpath) != files[name]["bytes"] or _sha256_file(fpath) != files[name]["sha256"]:
            raise CheckpointError(path, "sha256 does not match the manifest (corrupt or changed file)", name)
    return manifest


def load(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Verify, then load {model, optimizer, rng, state, spec}; errors name the file."""
    verify(path)
    out: dict[str, Any] = {}
    for key in ("model", "optimizer", "rng"):
        try:
            out[key] = torch.load(os.path.join(path, f"{key}.pt"), map_location=map_location, weights_only=True)
        except Exception as e:
            raise CheckpointError(path, f"cannot be loaded ({e})", f"{key}.pt") from e
    for key in ("state", "spec"):
        with open(os.path.join(path, f"{key}.json"), encoding="utf-8") as f:
            out[key] = json.load(f)
    return out


def list_steps(checkpoint_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every `step-<k>` folder, oldest first (not verified)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = [(int(m.group(1)), os.path.join(checkpoint_dir, n))
             for n in os.listdir(checkpoint_dir) if (m := STEP_RE.match(n))]
    return sorted(found)


def latest_good(checkpoint_dir: str) -> str | None:
    """The newest checkpoint that verifies; bad ones are logged and skipped."""
    for _, path in reversed(list_steps(checkpoint_dir)):
        try:
            verify(path)
            return path
        except CheckpointError as e:
            log.warning("skipping bad checkpoint: %s", e)
    return None


def steps_to_delete(steps: list[int], keep_last: int, keep_every: int = 0) -> list[int]:
    """Everything except the `keep_last` newest and, when keep_every > 0, the multiples of it; the newest is always
    kept (keepLast 0 too), as the coordinator's retention.ts (test/vectors/retention.json holds both to it)."""
    asc = sorted(set(steps))
    keep = set(asc[max(0, len(asc) - max(1, keep_last)):])
    keep |= {s for s in asc if keep_every > 0 and s % keep_every == 0}
    return [s for s in asc if s not in keep]


def prune(checkpoint_dir: str, keep_last: int, keep_every: int = 0) -> list[str]:
    """Standalone retention (the coordinator does it for managed jobs): steps_to_delete over the step folders.
    Returns removed paths."""
    steps = list_steps(checkpoint_dir)
    gone = set(steps_to_delete([s for s, _ in steps], keep_last, keep_every))
    removed = []
    for step, path in steps:
        if step in gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
