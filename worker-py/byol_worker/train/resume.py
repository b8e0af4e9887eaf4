"""A rank's checkpoints: resume from one (verified, fitted to this job), and save at a step boundary.

Every rank calls `Checkpointer.save` at the same boundary; rank 0 gathers the RNG states and writes in the
background (async_save.py), so the next step runs while the state is copied and written.
"""
from __future__ import annotations

import logging

import torch
import torch.distributed as dist

from ..core import checkpoint as ckpt
from .async_save import AsyncSaver
from .outcome import BadInput

log = logging.getLogger("byol.trainer")


def rng_state(device) -> dict:
    st = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def spec_differences(old: dict, new: dict, at: str = "", limit: int = 5) -> list[str]:
    """Dotted paths of the top fields where two resolved specs differ (at most `limit`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                out += spec_differences(old.get(k), new.get(k), f"{at}.{k}" if at else k, limit - len(out))
            if len(out) >= limit:
                break
        return out
    return [at or "(document)"] if limit > 0 else []


def restore(path: str, model, opt, device, rank: int, world_size: int, total_steps: int, resolved: dict,
            baselines: dict) -> int:
    """Load `path` into model and optimizer (and this rank's RNG when W is unchanged); return its step.
    Fills `baselines` from the checkpoint. Any problem is BadInput, never a silent fresh start."""
    try:
        c = ckpt.load(path, map_location=device)
        model.load_state_dict(c["model"])
        opt.load_state_dict(c["optimizer"])
    except ckpt.CheckpointError as e:
        raise BadInput(f"resume_checkpoint: {e}") from e
    except (RuntimeError, KeyError, ValueError) as e:
        raise BadInput(f"resume_checkpoint {path}: does not fit this job's model/optimizer ({e})") from e
    start = int(c["state"]["step"])
    if start > total_steps:
        raise BadInput(f"resume_checkpoint {path}: step {start} is past totalSteps {total_steps}")
    if c["spec"] != resolved:  # the recorded resolved spec, so standalone runs (no hash) are checked too
        log.warning("resuming %s written for a different spec (differs in %s); weights fit, going on",
                    path, ", ".join(spec_differences(c["spec"], resolved)))
    ranks = c["rng"].get("ranks", [])
    if c["rng"].get("world_size") == world_size and rank < len(ranks):
        torch.set_rng_state(ranks[rank]["torch"].cpu())
        if "cuda" in ranks[rank] and device.type == "cuda":
            torch.cuda.set_rng_state(ranks[rank]["cuda"].cpu(), device)
    baselines.update(c["state"].get("baselines", {}))
    log.info("resumed from %s at step %d", path, start)
    return start


class Checkpointer:
    """Saves of one rank's run; rank 0 owns the background writer. `saved` lists every SaveResult."""

    def __init__(self, *, assignment, resolved: dict, model, opt, step, device, dist_state,
                 reporter, baselines: dict) -> None:
        self.a, self.resolved = assignment, resolved
        self.model, self.opt, self.step, self.device, self.dist = model, opt, step, device, dist_state
        self.rank, self.W = assignment.rank, assignment.world_size
        self.reporter, self.baselines = reporter, baselines
        self.saved: list = []
        self.saver = AsyncSaver(on_done=self._saved)
        if self.rank == 0:
            self.saver.start()  # rank 0 writes every checkpoint, at least the last one
            step.before_update = self.saver.fence

    def _saved(self, res) -> None:
        """Writer-thread callback: report to the agent, log what a user can do about a failure."""
        self.saved.append(res)
        if res.ok:
            log.info("checkpoint step %d saved: %s (%d bytes, %.2fs in the background)",
                     res.step, res.path, res.bytes, res.seconds)
        else:
            log.error("checkpoint step %d FAILED, training goes on with older checkpoints kept: %s "
                      "(free disk space or fix permissions on %s)", res.step, res.error, self.a.checkpoint_dir)
        self.reporter.checkpoint(res.step, res.ok, res.path, res.bytes, res.sha256, res.error)

    def save(self, done: int, wait: bool) -> bool:
        """All ranks call this at the same boundary: gather RNG states to rank 0, which snapshots and
        saves. With wait, every rank learns whether rank 0's write succeeded."""
        rng = rng_state(self.device)
        states = [None] * self.W if self.rank == 0 else None
        if self.dist.initialized:
            dist.gather_object(rng, states, dst=0)
        else:
            states = [rng]
        ok = True
        if self.rank == 0:
            sch = self.a.schedule
            state = {"step": done, "epoch": done / sch.steps_per_epoch, "world_size": self.W,
                     "spec_hash": self.a.spec_hash, "job_id": self.a.job_id, "generation": self.a.generation,
                     "schedule": sch.as_recorded,
                     "baselines": dict(self.baselines)}
            snap = ckpt.Snapshot(done, self.model.state_dict(), self.opt.state_dict(),
                                 {"world_size": self.W, "ranks": states}, state, self.resolved)
            # parameters and optimizer state are copied while the next step's forward and backward run
            self.saver.save(snap, self.a.checkpoint_dir, stable=self.step.update_only_tensors())
            if wait:
                res = self.saver.wait()
                ok = bool(res and res.ok and res.step == done)
        if wait and self.dist.initialized:
            flag = torch.tensor([0 if ok else 1], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            ok = int(flag.item()) == 0
        return ok

    def close(self) -> None:
        self.saver.close()
