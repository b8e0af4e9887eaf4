"""The Python resolver against the shared vectors (test/vectors/spec-resolution.json, written from the
TypeScript resolver by scripts/make-spec-vectors.js); test/spec-vectors.test.ts holds TypeScript to the same
file, so each suite checks its own side."""
import json
import os

import pytest

from byol_worker.spec import SpecError, resolve

BASE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "test", "vectors"))
NON_FINITE = {"__Infinity__": float("inf"), "__-Infinity__": float("-inf"), "__NaN__": float("nan")}
with open(os.path.join(BASE, "spec-resolution.json"), encoding="utf-8") as f:
    CASES = json.load(f)["cases"]


def decode(x):
    """The file's encoding undone: <base> is this checkout's test/vectors, marker strings are non-finite numbers."""
    if isinstance(x, str):
        return NON_FINITE.get(x, x.replace("<base>", BASE))
    if isinstance(x, list):
        return [decode(v) for v in x]
    if isinstance(x, dict):
        return {k: decode(v) for k, v in x.items()}
    return x


def test_vectors_cover_presets_rules_and_both_outcomes():
    assert len(CASES) >= 20 and sum("issues" in c for c in CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_resolution_matches_the_vector(case):
    try:
        got = {"resolved": resolve(decode(case["doc"]), base_dir=BASE)}
    except SpecError as e:
        got = {"issues": [list(i) for i in e.issues]}
    assert got == ({"issues": decode(case["issues"])} if "issues" in case else {"resolved": decode(case["resolved"])})
