"""The package's shape: which folder may import which, short functions, one name per thing."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "real_hub"


def modules(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The real_hub modules a file imports (relative imports resolved), anywhere in the file."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {name for name in out if name.startswith("real_hub")}


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("drsow", ("real_hub.real",)),
        ("logprobs", ("real_hub.hub", "real_hub.convert", "real_hub.pipeline", "real_hub.real")),
        ("real", ("real_hub.drsow", "real_hub.cli", "real_hub.space")),
        ("convert", ("real_hub.real", "real_hub.drsow", "real_hub.processor", "real_hub.hub")),
    ],
)
def test_folders_import_only_below_them(folder, forbidden):
    for path in modules(folder):
        bad = {name for name in imported(path) if name.startswith(forbidden)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_generation_imports_nothing_of_drsow_or_real():
    bad = {n for n in imported(PACKAGE / "generate.py") if n.startswith(("real_hub.drsow", "real_hub.real"))}
    assert not bad


def test_no_function_is_longer_than_150_lines():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 150:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines} lines)")
    assert not long


@pytest.mark.parametrize("name", ["PAIR_COLUMNS", "REF_COLUMNS"])
def test_a_name_is_assigned_once(name):
    places = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                places.append(str(path.relative_to(PACKAGE)))
    assert places == ["schema.py"]


def test_train_dpo_has_at_most_ten_parameters():
    from real_hub import train_dpo

    assert len(inspect.signature(train_dpo).parameters) <= 10
