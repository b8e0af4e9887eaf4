"""The job-spec contract (contract/job.schema.json and contract/presets.json at the repository root).

Both languages own it: TypeScript imports contract/ directly; the worker reads the copy that the gen step
(`npm run gen`, scripts/gen-proto.sh, or the Dockerfiles) puts in byol_worker/gen/contract/ and that the
package installs as package data. This module is the only Python code that opens those files.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

CONTRACT_DIR = os.path.join(os.path.dirname(__file__), "gen", "contract")


def _load(name: str) -> dict:
    path = os.path.join(CONTRACT_DIR, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: the worker reads a copy of contract/{name}; run `npm run gen` "
            "(or bash scripts/gen-proto.sh) from the repository root") from None


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema of a job document."""
    return _load("job.schema.json")


@lru_cache(maxsize=1)
def presets() -> dict:
    """Defaults, presets and resolution rules (keys starting with `_` are comments)."""
    return _load("presets.json")
