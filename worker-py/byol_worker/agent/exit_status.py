"""What a trainer's exit means (docs/internals.md "Trainer exit codes")."""
from __future__ import annotations

import signal

from ..proto import agent_pb2

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75


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
        return agent_pb2.TRAINER_FAILED, f"killed by {sig}" + (f"; last error: {last_error}" if last_error else "")
    if returncode == EXIT_BAD_INPUT:
        return agent_pb2.TRAINER_FAILED, last_error or "bad input (exit 2) and no reason on stderr"
    return agent_pb2.TRAINER_FAILED, last_error or f"exit code {returncode} and nothing on stderr"
