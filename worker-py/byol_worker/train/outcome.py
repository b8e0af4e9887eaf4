"""How a trainer rank ends: exit codes, the bad-input error, the run's result, and the stop flag signals set."""
from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field

log = logging.getLogger("byol.trainer")

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PREEMPTED = 0, 2, 1, 75


class BadInput(Exception):
    """Bad spec, data, checkpoint or assignment: exit 2 with this message as stderr's last line."""


@dataclass
class RunResult:
    """What a run did; `train_in_process` returns it, `main` turns it into an exit code."""
    exit_code: int
    step: int                                   # global steps completed
    losses: dict[int, float] = field(default_factory=dict)   # k -> this rank's loss
    z_std: dict[int, float] = field(default_factory=dict)    # k -> collapse monitor (0 = collapsed)
    knn_top1: float | None = None
    baselines: dict = field(default_factory=dict)            # knn_top1_random_init, knn_top1_raw_pixels
    checkpoints: list = field(default_factory=list)          # checkpoint.SaveResult of this rank's saves
    message: str = ""


class StopFlag:
    """Raised by SIGTERM/SIGINT; read at each step boundary and folded into the stop agreement."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        def handler(signum, _frame):
            if not self.requested:
                log.info("received %s: stopping at the next step boundary after a checkpoint",
                         signal.Signals(signum).name)
            self.requested = True
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
