"""Reconnect delays (docs/internals.md: 0.2 s doubling to 5 s, with jitter)."""
from __future__ import annotations

import random


def backoff_delay(attempt: int, rng: random.Random | None = None, base_s: float = 0.2,
                  cap_s: float = 5.0) -> float:
    """Delay before reconnect number `attempt` (0-based): min(cap, base * 2**attempt), times a jitter
    factor uniform in [0.5, 1) so that agents cut off together do not all dial back in the same instant."""
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 30)))
    return ceiling * (0.5 + 0.5 * (rng or random).random())
