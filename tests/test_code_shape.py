"""The shape issue 16 asks of the code, measured: small functions, a small loop, and config
validation that does not reach up into the modules owning the names it checks."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "dfad"
MAX_FUNCTION_LINES = 60


def function_lengths() -> dict[str, int]:
    lengths = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{path.relative_to(PACKAGE).as_posix()}:{node.name}"
                lengths[key] = max(lengths.get(key, 0), node.end_lineno - node.lineno + 1)
    return lengths


def test_no_function_is_longer_than_sixty_lines():
    too_long = {k: n for k, n in function_lengths().items() if n > MAX_FUNCTION_LINES}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (docstring included): {too_long}"


def test_the_training_loop_reads_as_the_algorithm():
    assert function_lengths()["engine/loop.py:fit"] <= 40


def test_config_validation_imports_none_of_the_modules_owning_names():
    tree = ast.parse((PACKAGE / "config.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    owners = {"methods", "models", "data", "tasks", "engine"}
    assert not {m for m in imported if m.split(".")[0] in owners}, imported


def test_the_runner_is_small_and_knows_no_method_by_name():
    """runs.py assembles runs without knowing methods: each method builds itself (from_config)."""
    from dfad.methods import METHODS

    source = (PACKAGE / "runs.py").read_text()
    assert len(source.splitlines()) <= 250
    strings = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)
               and isinstance(node.value, str)}
    # "supervised" is how teachers are trained, not a distillation method a config can name.
    named = {name for name in METHODS.names() if name != "supervised" and name in strings}
    assert not named, f"runs.py names methods {named}"
