"""The worker package's import rules (docs/architecture.md §12), as test/architecture-imports.test.ts checks the
coordinator's: core/ is shared by everything and imports none of data/, train/, evaluate/ or agent/; evaluate/
judges an encoder and never imports train/. Reads every import statement (lazy ones inside functions too)."""
from __future__ import annotations

import ast
from pathlib import Path

import byol_worker

PACKAGE = Path(byol_worker.__file__).parent
FORBIDDEN = {
    "core": ("data", "train", "evaluate", "agent"),
    "evaluate": ("train",),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of the modules `source` (the text of `module`) imports; relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            out.append(target)
            out += [f"{target}.{a.name}" for a in node.names]  # `from .. import train` names a module too
    return out


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    group = module.split(".")[1] if module.count(".") >= 1 else ""
    banned = [f"byol_worker.{b}" for b in FORBIDDEN.get(group, ())]
    return sorted({f"{module} imports {name}" for name in imported(source, module, is_package)
                   for b in banned if name == b or name.startswith(b + ".")})


def test_the_checker_sees_absolute_relative_and_lazy_imports():
    assert violations("from ..train import checkpoint\n", "byol_worker.evaluate.knn") == [
        "byol_worker.evaluate.knn imports byol_worker.train",
        "byol_worker.evaluate.knn imports byol_worker.train.checkpoint"]
    assert violations("def f():\n    import byol_worker.agent.cli\n", "byol_worker.core.step") == [
        "byol_worker.core.step imports byol_worker.agent.cli"]
    assert violations("from .. import data\n", "byol_worker.core", is_package=True) == [
        "byol_worker.core imports byol_worker.data"]
    assert violations("from ..core import device\nfrom ..data import loading\n", "byol_worker.evaluate.knn") == []
    assert violations("from ..evaluate import knn\n", "byol_worker.train.trainer") == []  # train may use evaluate
    assert violations("from .trainer_state import x\n", "byol_worker.core.step") == []  # not train/, a sibling


def test_core_and_evaluate_import_only_what_they_may():
    files = sorted(p for group in FORBIDDEN for p in (PACKAGE / group).rglob("*.py"))
    assert len(files) > 10
    found = [v for p in files
             for v in violations(p.read_text(encoding="utf-8"), module_name(p), p.name == "__init__.py")]
    assert found == []
