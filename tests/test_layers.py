"""The layers of docs/architecture.md hold: each module imports bench modules only from the layers
it may (module-level and function-level imports alike)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

#: The foundations every layer may import: errors, input limits, paths confined to a model folder,
#: cached file hashes.
FOUNDATIONS: frozenset[str] = frozenset({"errors", "limits", "safe_paths", "hashing"})

#: package or module -> bench packages / modules it may import (besides itself and the foundations).
ALLOWED: dict[str, set[str]] = {
    "limits": set(),
    "safe_paths": set(),
    "engines": set(),
    "models": {"engines"},
    "pipeline": {"engines", "models", "measure.recorder"},
    "suite": {"engines", "pipeline.request", "pipeline.init_image", "builtin_suites"},
    "measure": set(),
    "schema": {"suite"},
    "store": {"schema"},
    "executor": {"engines", "measure.recorder", "models", "pipeline", "schema", "suite"},
    "model_prep": {"models", "suite"},
    "plugin": {"executor", "measure.recorder", "model_prep", "models", "suite"},
    "protocol": {"measure.spans", "models", "schema", "suite"},
    "worker": {"lifeline", "executor", "measure", "models", "plugin", "protocol", "schema", "store", "suite"},
    "runner": {"measure", "model_prep", "models", "plugin", "protocol", "schema", "store", "suite", "validity"},
}


def _bench_imports(path: Path) -> set[str]:
    """Dotted names under bench that `path` imports (`bench.measure.stats` -> "measure.stats")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module == "bench":  # `from bench import x`: x alone
            names = [f"bench.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "bench":
                found.add("bench")
            elif name.startswith("bench."):
                found.add(name[len("bench."):])
    return found


def _owner(path: Path) -> str:
    relative = path.relative_to(BENCH)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _allowed(owner: str, name: str) -> bool:
    if name.split(".")[0] in FOUNDATIONS or name.split(".")[0] == owner:
        return True
    return any(name == rule or name.startswith(rule + ".") for rule in ALLOWED[owner])


def test_every_module_imports_only_from_the_layers_below() -> None:
    problems = []
    for path in sorted(BENCH.rglob("*.py")):
        owner = _owner(path)
        if owner not in ALLOWED:
            continue
        # `from bench.x import y` yields both "x" and "x.y"; judging the module part is enough
        modules = {name for name in _bench_imports(path) if (BENCH / name.replace(".", "/")).exists()
                   or (BENCH / (name.replace(".", "/") + ".py")).exists()}  # fmt: skip
        problems += [f"{path.relative_to(BENCH.parent)} imports bench.{name}" for name in sorted(modules)
                     if not _allowed(owner, name)]  # fmt: skip
    assert not problems, "\n".join(problems)


def test_worker_and_runner_share_only_the_protocol() -> None:
    assert not {"runner", "session", "model_prep"} & {n.split(".")[0] for n in _bench_imports(BENCH / "worker.py")}
    assert not {"worker", "executor"} & {n.split(".")[0] for n in _bench_imports(BENCH / "runner.py")}
