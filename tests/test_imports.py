"""Imports stay at the top of modules. The one exception is a deferred heavy or optional import
(torch behind a command that may never train, the export extras, the trackers, matplotlib,
optuna, SciPy) inside a function, with a comment saying why: on its line or above its group.
A light import deferred for no reason, or a deferred import without its reason, fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lastexp

PACKAGE = Path(lastexp.__file__).resolve().parent

# What may be imported inside a function: packages that are optional (lastexp[export],
# lastexp[tflite], torchao), take a second or more to import, or are lastexp modules that
# import torch, behind commands that may never train.
DEFERRABLE = (
    "onnx", "onnxruntime", "ai_edge_litert", "torchao", "torch.ao", "torch._inductor",
    "torch.utils.tensorboard", "tensorboard", "wandb", "matplotlib", "optuna", "scipy",
    "lastexp.run", "lastexp.data.dataset",
)


def imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The absolute names of the modules a statement in ``package`` imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        return [str(node.module)]
    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
    return [".".join([*parts, node.module] if node.module else parts)]


def deferrable(target: str) -> bool:
    return any(target == d or target.startswith(d + ".") for d in DEFERRABLE)


def deferred_imports(source: str) -> list[tuple[int, ast.Import | ast.ImportFrom]]:
    """(line, statement) of each import inside a function or class body."""
    found = []

    def visit(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and inside:
                found.append((child.lineno, child))
            visit(child, inside or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def has_reason(lines: list[str], lineno: int) -> bool:
    """A comment (not a bare ``noqa``) on the statement's line, or on the line above it or
    above the run of import statements it belongs to (an ``except``/``try`` line counts)."""
    def reason(text: str) -> bool:
        comment = text.partition("#")[2].strip()
        return bool(comment) and not comment.startswith("noqa")

    in_imports = {n for node in ast.walk(ast.parse("\n".join(lines)))
                  if isinstance(node, (ast.Import, ast.ImportFrom))
                  for n in range(node.lineno, node.end_lineno + 1)}  # 1-based
    if reason(lines[lineno - 1]):
        return True
    above = lineno - 1
    while above in in_imports:
        above -= 1
    return above >= 1 and reason(lines[above - 1])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def problems() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for lineno, node in deferred_imports(source):
            where = f"{path.relative_to(PACKAGE.parent)}:{lineno}"
            for target in imported(node, package):
                if not deferrable(target):
                    found.append(f"{where}: {target} is light; import it at the top")
            if not has_reason(lines, lineno):
                found.append(f"{where}: a deferred import needs a comment saying why")
    return found


def test_the_checker_sees_a_light_or_unexplained_deferred_import(tmp_path):
    light = "def f():\n    import json\n"
    heavy = "def f():\n    # deferred: heavy\n    import matplotlib\n    import matplotlib.pyplot\n"
    bare = "def f():\n    import optuna  # noqa: F401\n"
    assert [n for n, _ in deferred_imports(light)] == [2]
    assert has_reason(heavy.splitlines(), 3) and has_reason(heavy.splitlines(), 4)
    assert not has_reason(bare.splitlines(), 2)
    assert not has_reason(light.splitlines(), 2)
    assert deferred_imports("import json\nif True:\n    import os\n") == []
    statement = ast.parse("from .dataset import X").body[0]
    assert imported(statement, "lastexp.data") == ["lastexp.data.dataset"]
    assert deferrable("lastexp.data.dataset") and not deferrable("lastexp.data")
    assert deferrable("matplotlib.pyplot") and not deferrable("matplotlibx")


def test_imports_stay_at_the_top_of_modules():
    found = problems()
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module", ["lastexp.config", "lastexp.app", "lastexp.plan",
                                    "lastexp.preprocess", "lastexp.data", "lastexp.results",
                                    "lastexp.runstore", "lastexp.dependencies",
                                    "lastexp.optuna_study", "lastexp.runs"])
def test_modules_of_commands_that_never_train_do_not_import_torch(module):
    # the reason the deferred torch imports exist: planning, composing, preprocessing and the
    # tables start without torch's ~1.6 s
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
