"""Step 3 of spec resolution: the `rules` of contract/presets.json (defaults filled from other fields, bounds
between fields, required fields, paths), applied to a merged spec. The rules are data; this is their
interpreter, the same as orchestrator/src/spec/rules.ts (test/vectors/spec-resolution.json holds both to it)."""
from __future__ import annotations

import copy
import os
from typing import Any

from .contract import presets
from .spec_error import value_text

_ABSENT = object()


def rules() -> dict:
    return presets()["rules"]


def _get(spec: dict, path: str) -> Any:
    o: Any = spec
    for k in path.split("."):
        if not isinstance(o, dict) or k not in o:
            return _ABSENT
        o = o[k]
    return o


def _set(spec: dict, path: str, value: Any) -> None:
    *keys, last = path.split(".")
    o = spec
    for k in keys:
        o = o.setdefault(k, {})
    o[last] = value


def apply_rules(spec: dict, base_dir: str, r: dict | None = None) -> list[tuple[str, str]]:
    """Apply the rules to `spec` (the merged `spec` section) in place; return the issues, in rule order."""
    r = r if r is not None else rules()
    issues: list[tuple[str, str]] = []
    for target, source in r["defaultFrom"].items():
        if _get(spec, target) is _ABSENT and _get(spec, source) is not _ABSENT:
            _set(spec, target, copy.deepcopy(_get(spec, source)))
    for field, bound in r["atMost"].items():
        v, top = _get(spec, field), _get(spec, bound)
        if v is not _ABSENT and top is not _ABSENT and v > top:
            issues.append((f"spec.{field}", f"must be <= spec.{bound} ({top})"))
    for field, unless in r["requiredUnless"].items():
        other = _get(spec, unless["field"])
        if _get(spec, field) is _ABSENT and other != unless["equals"]:
            issues.append((f"spec.{field}", f"required when spec.{unless['field']} is {value_text(other)}"))
    for field in r["paths"]:
        v = _get(spec, field)
        if isinstance(v, str):
            _set(spec, field, os.path.abspath(os.path.join(base_dir, v)))  # as node's path.resolve
    return issues
