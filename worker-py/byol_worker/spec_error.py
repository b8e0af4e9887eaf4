"""The error a bad job spec raises; its own module so that the data-layout checks (data/layout.py) raise the same
type without importing spec.py, which calls them."""
from __future__ import annotations

import json
from typing import Iterable


class SpecError(ValueError):
    """A spec (or its data) is wrong. `issues` is a list of (field path, message)."""

    def __init__(self, issues: Iterable[tuple[str, str]] | str):
        # a plain message is accepted so that re-raising by type (DataLoader workers) keeps working
        self.issues = [("", issues)] if isinstance(issues, str) else list(issues)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.issues))


def value_text(v) -> str:
    """A value as the spec messages show it: strings quoted with ', numbers as JavaScript writes them, the rest
    as JSON (both languages' messages read the same)."""
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, bool):
        return "true" if v else "false"
    return number_text(v) if isinstance(v, (int, float)) else json.dumps(v)


def number_text(x: float | int) -> str:
    """A number as JavaScript writes the ones in spec messages (20000, not 20000.0; 0.5), so that both languages'
    messages read the same (test/vectors)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e21 else str(x)
