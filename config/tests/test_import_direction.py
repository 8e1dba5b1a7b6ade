"""Apps import one way: core -> accounts -> datanets -> models_factory -> attribution -> settlement -> watch -> demo.

Every import in every module of an app (module level, inside functions, in its tests) may name only the app itself,
apps to its left, ``config`` (wiring) and third-party packages. Migrations are exempt: Django resolves their
cross-app references by name, in the migration graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["core", "accounts", "datanets", "models_factory", "attribution", "settlement", "watch", "demo"]
RANK = {app: i for i, app in enumerate(ORDER)}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import statement in the file, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def upward_edges() -> list[str]:
    edges = []
    for app in ORDER:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for line, module in imported_modules(path):
                target = module.split(".")[0]
                if target in RANK and RANK[target] > RANK[app]:
                    edges.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({app} may not import {target})")
    return edges


def test_every_app_imports_only_apps_to_its_left() -> None:
    assert upward_edges() == []


def test_the_walker_sees_imports_inside_functions_and_relative_ones() -> None:
    probe = ROOT / "core" / "_probe_for_import_test.py"
    probe.write_text("def f():\n    from settlement import models\n\nfrom ..demo import loader\n", encoding="utf-8")
    try:
        modules = [module for _, module in imported_modules(probe)]
        edges = upward_edges()
    finally:
        probe.unlink()
    assert sorted(modules) == ["demo", "settlement"]
    assert any("core/_probe_for_import_test.py:2 imports settlement" in e for e in edges)


@pytest.mark.parametrize("app", ORDER)
def test_each_app_is_installed_and_says_what_it_owns(app: str) -> None:
    from django.apps import apps

    assert apps.is_installed(app)
    doc = ast.get_docstring(ast.parse((ROOT / app / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc) > 40, f"{app}/__init__.py needs a docstring that says what the app owns"
