"""Job spec: load, validate, resolve (presets), check the data, and derive the schedule plan.

Follows docs/internals.md "Spec resolution" and "Schedule numbers" exactly; the coordinator (TypeScript)
implements the same rules, so the two must stay in step.

    from byol_worker.spec import load_spec, plan, spec_hash
    resolved = load_spec("examples/quickstart.yaml")      # raises SpecError naming every bad field
    p = plan(resolved, world_size=2, dataset_size=20000)  # stepsPerEpoch, totalSteps, ...
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from decimal import Decimal
from typing import Any, Iterable

import yaml

from .contract import presets, schema
from .data.layout import check_data_layout
from .optional import Draft7Validator
from .spec_error import SpecError

MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_NODES = 100_000
MAX_TOTAL_STEPS = 100_000_000  # the most optimizer steps a job may resolve to (K); the coordinator has the same


# ---------------------------------------------------------------- validation messages

def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(document)"


def _fmt(v: Any) -> str:
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, bool):
        return "true" if v else "false"
    return _js_number(v) if isinstance(v, (int, float)) else json.dumps(v)


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
    try:
        doc = yaml.safe_load(text)
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
    res, data = spec["resources"], spec["data"]
    res.setdefault("minWorkers", res["workers"])
    if res["minWorkers"] > res["workers"]:
        issues.append(("spec.resources.minWorkers", f"must be <= spec.resources.workers ({res['workers']})"))
    if data["format"] != "synthetic":
        if "path" not in data:
            issues.append(("spec.data.path", f"required for format '{data['format']}'"))
        else:
            data.setdefault("evalPath", data["path"])
            root = base_dir if base_dir is not None else os.getcwd()
            for key in ("path", "evalPath"):
                data[key] = os.path.abspath(os.path.join(root, data[key]))  # as node's path.resolve
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


# ---------------------------------------------------------------- plan and hash

def split_batch(global_batch: int, world_size: int, micro_batch: int = 0) -> tuple[int, int]:
    """(b, a) with W*b*a = B (internals.md); SpecError naming the fields when B % W != 0."""
    if world_size < 1 or global_batch % world_size:
        divisors = [str(d) for d in range(1, global_batch + 1) if global_batch % d == 0]
        raise SpecError([("spec.train.globalBatch",
                          f"{global_batch} cannot be split over spec.resources.workers = {world_size}; "
                          f"worker counts that divide it: {', '.join(divisors)}")])
    per = global_batch // world_size
    if micro_batch == 0 or micro_batch >= per:
        return per, 1
    b = max(d for d in range(1, micro_batch + 1) if per % d == 0)
    return b, per // b


def plan(resolved: dict, world_size: int, dataset_size: int) -> dict:
    """Schedule numbers for a world size and dataset size (internals.md "Schedule numbers")."""
    s = resolved["spec"]
    B, N = int(s["train"]["globalBatch"]), int(dataset_size)
    spe = N // B
    if spe == 0:
        raise SpecError([("spec.train.globalBatch", f"{B} is larger than the dataset ({N} samples)")])
    K = max(1, math.floor(s["train"]["epochs"] * spe))
    if K > MAX_TOTAL_STEPS:
        epochs = _js_number(s["train"]["epochs"])
        raise SpecError([("spec.train.epochs", f"{epochs} epochs of {spe} steps make {K} steps, over the maximum of "
                          f"{MAX_TOTAL_STEPS}; lower spec.train.epochs or raise spec.train.globalBatch")])
    warmup = min(math.floor(s["optimizer"]["warmupEpochs"] * spe), K - 1)
    base = s["optimizer"]["baseLr"]
    peak = base * B / 256 if s["optimizer"]["lrScaling"] == "linear" else base
    b, a = split_batch(B, world_size, int(s["train"]["microBatch"]))
    return {"stepsPerEpoch": spe, "totalSteps": K, "warmupSteps": warmup, "peakLr": float(peak),
            "tauBase": float(s["ema"]["base"]), "tauSchedule": s["ema"].get("schedule", "cosine"), "globalBatch": B, "microBatch": b, "accumulation": a}


def _js_number(x: float | int) -> str:
    """Format a number as JavaScript's JSON.stringify does, so hashes agree with the coordinator."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return "null"
    if x == 0:
        return "0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    n = len(ds) + exp  # position of the decimal point relative to the digits
    s = "-" if sign else ""
    if 0 < n <= 21:
        return s + (ds + "0" * (n - len(ds)) if n >= len(ds) else ds[:n] + "." + ds[n:])
    if -6 < n <= 0:
        return s + "0." + "0" * (-n) + ds
    e = n - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{s}{mant}e{'+' if e > 0 else '-'}{abs(e)}"


def canonical_json(x: Any) -> str:
    """Sorted keys, no spaces, JavaScript number formatting, UTF-8 kept."""
    if isinstance(x, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + canonical_json(v)
                              for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(x, (list, tuple)):
        return "[" + ",".join(canonical_json(v) for v in x) + "]"
    if x is None:
        return "null"
    if isinstance(x, (bool, int, float)):
        return _js_number(x)
    return json.dumps(x, ensure_ascii=False)


def spec_hash(resolved: dict) -> str:
    """sha256 (hex) of the resolved spec's canonical JSON."""
    return hashlib.sha256(canonical_json(resolved).encode("utf-8")).hexdigest()
