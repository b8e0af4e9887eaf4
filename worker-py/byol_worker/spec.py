"""Job spec: load, validate and resolve a user's document (docs/internals.md "Spec resolution"), or take the
resolved document `byolctl plan --resolved` writes. The schema, defaults, presets and rules are data in
contract/ (read through contract.py); the rules' interpreter is spec_rules.py. The coordinator resolves the
same way (orchestrator/src/spec/); test/vectors/spec-resolution.json holds both to it.

    from byol_worker.spec import load_spec, load_job
    resolved = load_spec("examples/quickstart.yaml")      # raises SpecError naming every bad field
    resolved, spec_hash = load_job("resolved.json")      # a user YAML (hash "") or a resolved file
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
from typing import Any, Iterable

import yaml

from .contract import presets, schema
from .data.layout import check_data_layout
from .optional import Draft7Validator
from .spec_error import SpecError, value_text as _fmt
from .spec_rules import apply_rules

MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_NODES = 100_000
RESOLVED_KEYS = ("apiVersion", "kind", "metadata", "spec", "specHash")  # what `byolctl plan --resolved` writes


# ---------------------------------------------------------------- validation messages

def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(document)"


_TYPE_WORDS = {"object": "an object", "array": "an array", "string": "a string", "number": "a number",
               "integer": "an integer", "boolean": "a boolean", "null": "null"}


def _translate(err) -> list[tuple[str, str]]:
    """One jsonschema error -> (path, message) pairs that read like `spec.optimizer.baseLr: must be > 0`."""
    path = list(err.absolute_path)
    v, val, inst = err.validator, err.validator_value, err.instance
    if v == "additionalProperties":
        known = set(err.schema.get("properties", {}))
        return [(_path(path + [k]), "unknown field") for k in sorted(inst) if k not in known]
    if v == "required":
        return [(_path(path + [k]), "required field is missing") for k in val if k not in inst]
    if v == "type":
        types = val if isinstance(val, list) else [val]
        return [(_path(path), "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types))]
    simple = {
        "minimum": f"must be >= {_fmt(val)}", "maximum": f"must be <= {_fmt(val)}",
        "exclusiveMinimum": f"must be > {_fmt(val)}", "exclusiveMaximum": f"must be < {_fmt(val)}",
        "const": f"must be {_fmt(val)}",
        "pattern": f"must match {val}", "minLength": "must not be empty" if val == 1 else
        f"must be at least {val} characters", "maxLength": f"must be at most {val} characters",
        "minItems": f"must have at least {val} items", "maxItems": f"must have at most {val} items",
    }
    if v == "enum":
        return [(_path(path), "must be one of " + ", ".join(_fmt(x) for x in val))]
    if v in ("minItems", "maxItems") and err.schema.get("minItems") == err.schema.get("maxItems"):
        return [(_path(path), f"must have exactly {val} items")]
    if v in simple:
        return [(_path(path), simple[v])]
    return [(_path(path), err.message)]


def _non_finite_paths(x: Any, at: list, out: list[str]) -> list[str]:
    """Paths of YAML `.inf` / `.nan` values, which JSON Schema cannot refuse by itself."""
    if isinstance(x, float) and not math.isfinite(x):
        out.append(_path(at))
    elif isinstance(x, dict):
        for k, v in x.items():
            _non_finite_paths(v, at + [k], out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _non_finite_paths(v, at + [i], out)
    return out


def validate(doc: Any) -> list[tuple[str, str]]:
    """Schema issues of a user's document, sorted by path; [] when valid."""
    infinite = _non_finite_paths(doc, [], [])
    issues: set[tuple[str, str]] = {(p, "must be finite") for p in infinite}
    for err in Draft7Validator(schema()).iter_errors(doc):
        issues.update(i for i in _translate(err) if i[0] not in infinite)
    return sorted(issues)


# ---------------------------------------------------------------- loading and resolution

def read_spec_file(path: str) -> dict:
    """Read a YAML (or JSON) spec file with a size limit; errors name the file and line."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise SpecError([("", f"{path}: cannot read spec file ({e.strerror})")]) from e
    if size > MAX_SPEC_BYTES:
        raise SpecError([("", f"{path}: spec file is {size} bytes, over the {MAX_SPEC_BYTES} byte limit")])
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    try:  # JSON first: PyYAML (YAML 1.1) reads JSON's 1e-05 as a string
        doc = json.loads(text)
    except ValueError:
        doc = None
    try:
        doc = yaml.safe_load(text) if doc is None else doc
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e)
        raise SpecError([("", f"{path}:{where}: YAML syntax error: {what}")]) from e
    if not isinstance(doc, dict):
        raise SpecError([("", f"{path}: a spec must be a YAML mapping (apiVersion, kind, metadata, spec)")])
    if _too_many_nodes(doc):  # YAML aliases can expand a small file into a huge tree ("billion laughs")
        raise SpecError([("", f"{path}: spec expands to more than {MAX_SPEC_NODES} values (YAML aliases?)")])
    return doc


def _too_many_nodes(doc: Any) -> bool:
    budget, stack = MAX_SPEC_NODES, [doc]
    while stack:
        x = stack.pop()
        budget -= 1
        if budget < 0:
            return True
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def _drop_comments(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _drop_comments(v) for k, v in x.items() if not str(k).startswith("_")}
    return copy.deepcopy(x)


def merge(base: Any, over: Any) -> Any:
    """Objects merge key by key; arrays and scalars replace (internals.md step 2)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def resolve(doc: dict, base_dir: str | None = None, check_data: bool = True, check_schema: bool = True) -> dict:
    """Validate a user's document (already parsed) and return the resolved spec. check_schema=False only for a
    document already validated elsewhere, on a host without jsonschema (the GPU test image)."""
    issues = validate(doc) if check_schema else []
    if issues:
        raise SpecError(issues)
    p = presets()
    user = doc["spec"]
    name = user.get("preset", p["defaultPreset"])
    spec = merge(merge(_drop_comments(p["defaults"]), _drop_comments(p["presets"][name])), user)
    issues = apply_rules(spec, base_dir if base_dir is not None else os.getcwd())
    if issues:
        raise SpecError(issues)
    resolved = {k: copy.deepcopy(v) for k, v in doc.items() if k != "spec"}
    resolved["spec"] = spec
    if check_data:
        check_data_layout(spec)
    return resolved


def load_spec(path_or_dict: str | os.PathLike | dict, base_dir: str | None = None,
              check_data: bool = True) -> dict:
    """Load (file: YAML, 1 MiB limit) or take (dict) a job document and resolve it.

    Relative data paths resolve against base_dir, which defaults to the spec file's folder (or the
    current folder for a dict). Raises SpecError with every issue found.
    """
    if isinstance(path_or_dict, dict):
        return resolve(path_or_dict, base_dir, check_data)
    path = os.fspath(path_or_dict)
    doc = read_spec_file(path)
    try:
        return resolve(doc, base_dir if base_dir is not None else os.path.dirname(os.path.abspath(path)),
                       check_data)
    except SpecError as e:
        raise type(e)([(p, m) if p else ("", f"{path}: {m}") for p, m in e.issues]) from None


def from_resolved(doc: dict, source: str) -> tuple[dict, str]:
    """A document `byolctl plan --resolved` wrote: used as is (no re-resolution; its paths are absolute)."""
    unknown = sorted(k for k in doc if k not in RESOLVED_KEYS)
    if unknown:
        raise SpecError([(k, f"{source}: unknown top-level field of a resolved spec (it has "
                             f"{', '.join(RESOLVED_KEYS)}); write it with `byolctl plan --resolved`") for k in unknown])
    h = doc["specHash"]
    if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
        raise SpecError([("specHash", f"{source}: must be a sha256 as 64 lowercase hex digits")])
    if not isinstance(doc.get("spec"), dict):
        raise SpecError([("spec", f"{source}: a resolved spec needs a 'spec' object")])
    resolved = {k: v for k, v in doc.items() if k != "specHash"}
    check_data_layout(resolved["spec"])
    return resolved, h


def load_job(path: str | os.PathLike) -> tuple[dict, str]:
    """(resolved document, spec hash) from a user's YAML (resolved here; hash "", only the coordinator computes
    one) or from a resolved file (its top-level specHash says so)."""
    path = os.fspath(path)
    doc = read_spec_file(path)
    if "specHash" in doc:
        return from_resolved(doc, path)
    return load_spec(path), ""
