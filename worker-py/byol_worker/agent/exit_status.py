"""What a trainer's exit means (docs/internals.md "Trainer exit codes")."""
from __future__ import annotations

import re
import signal

from ..proto import agent_pb2

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75

# A routine log line (logging_setup's `HH:MM:SS LEVEL name ...`): after a signal it is not the cause,
# only what the trainer happened to print last ("checkpoint step 30 saved").
_ROUTINE_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def classify_exit(returncode: int, *, aborted: bool = False, killed_after_grace: bool = False,
                  last_error: str = "") -> tuple[int, str]:
    """(TrainerState, message) for a trainer that exited with `returncode` (negative = killed by signal).

    aborted: the agent SIGKILLed it on the coordinator's ABORT; killed_after_grace: it outlived the
    preemption grace period. `last_error` is the last line of its stderr.
    """
    if returncode == EXIT_OK:
        return agent_pb2.TRAINER_SUCCEEDED, ""
    if returncode == EXIT_PREEMPTED:
        return agent_pb2.TRAINER_PREEMPTED, "stopped on request after a checkpoint"
    if returncode < 0:
        sig = _signal_name(-returncode)
        if aborted:
            return agent_pb2.TRAINER_ABORTED, f"killed by {sig} on the coordinator's abort"
        if killed_after_grace:
            return agent_pb2.TRAINER_FAILED, (f"killed by {sig}: did not stop within the preemption grace "
                                              "period; raise spec.preemption.gracePeriodSeconds")
        cause = last_error if last_error and not _ROUTINE_LINE.match(last_error) else ""
        return agent_pb2.TRAINER_FAILED, (f"killed by {sig} (signal {-returncode}), which the agent did not send: "
                                          + ("often the kernel's OOM killer (see `dmesg`), a user or the node"
                                             if -returncode == signal.SIGKILL else "a crash, a user or the node")
                                          + (f"; last error: {cause}" if cause else ""))
    if returncode == EXIT_BAD_INPUT:
        return agent_pb2.TRAINER_FAILED, last_error or "bad input (exit 2) and no reason on stderr"
    return agent_pb2.TRAINER_FAILED, last_error or f"exit code {returncode} and nothing on stderr"
