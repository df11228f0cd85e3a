"""Every ``from mlops_tasks… import …`` / ``from flows… import …`` shown in README.md and docs/ works.

The imports are read from the Python code blocks of the Markdown files (parsed with
``ast``, so multi-line imports count too), then imported for real: a module that moves
must keep its documented import path.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```(?:python|py)\n(.*?)```", re.S)
OURS = ("mlops_tasks", "flows", "deployments")


def documented_imports() -> list[tuple[str, str, str]]:
    """``(file, module, name)`` for every import of ours in a Python block of the docs."""
    found: set[tuple[str, str, str]] = set()
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]:
        for block in FENCE.findall(path.read_text(encoding="utf-8")):
            lines = [
                line
                for line in block.splitlines()
                if line.lstrip().startswith(("from ", "import ")) or line.startswith((" ", ")"))
            ]
            try:
                tree = ast.parse(block)
            except SyntaxError:
                # Snippets with "..." placeholders: parse only their import statements.
                try:
                    tree = ast.parse("\n".join(lines))
                except SyntaxError:
                    continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(OURS):
                    for alias in node.names:
                        found.add((path.relative_to(ROOT).as_posix(), node.module, alias.name))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith(OURS):
                            found.add((path.relative_to(ROOT).as_posix(), alias.name, ""))
    return sorted(found)


IMPORTS = documented_imports()


def test_the_docs_show_imports() -> None:
    assert len(IMPORTS) >= 15, IMPORTS


@pytest.mark.parametrize(("source", "module", "name"), IMPORTS, ids=[f"{m}:{n}" for _, m, n in IMPORTS])
def test_documented_import_works(source: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    if name:
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (
            f"{source} shows `from {module} import {name}`, which no longer works"
        )
