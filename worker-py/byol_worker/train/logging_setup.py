"""One logging set-up for every worker entry point (trainer, launcher, agent).

Lines go to stderr as `time level name [rank] message`, so a trainer's last stderr line is the reason it
exited (docs/internals.md, exit code 2). `BYOL_LOG_LEVEL` (DEBUG, INFO, ...) overrides the level.
"""
from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s%(rank_tag)s %(message)s"


class _RankFilter(logging.Filter):
    """Adds `rank_tag` (" [rank 3]" or "") so lines from many trainers stay apart in one terminal."""

    def __init__(self, rank: int | None) -> None:
        super().__init__()
        self.tag = f" [rank {rank}]" if rank is not None else ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank_tag = self.tag
        return True


def setup_logging(rank: int | None = None, level: str | None = None) -> None:
    """Configure the root logger once per process; later calls only update the rank tag and level."""
    level_name = (level or os.environ.get("BYOL_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_byol", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._byol = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        root.addHandler(handler)
    for f in list(handler.filters):
        handler.removeFilter(f)
    handler.addFilter(_RankFilter(rank))
    root.setLevel(getattr(logging, level_name, logging.INFO))
