"""Every third-party import is declared in pyproject.toml, not merely installed by another package.

A module that works only because web3 happens to pull in pydantic breaks the day web3 stops doing so
(or pins a major version the code does not speak). The package's imports must be covered by
``[project].dependencies``; the tests' and benchmarks' by those plus the ``dev`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"keeper", "tests", "bench"}


def normalized(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml``, ``eth_abi`` and ``eth-abi`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return normalized(match.group(0))


@cache
def declared() -> tuple[frozenset[str], frozenset[str]]:
    """(runtime dependencies, the dev extra), as normalized distribution names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = frozenset(requirement_name(r) for r in project["dependencies"])
    dev = frozenset(requirement_name(r) for r in project["optional-dependencies"]["dev"])
    return runtime, dev


def third_party_imports(folder: str) -> dict[str, str]:
    """Top-level module name -> first file importing it, for every absolute non-stdlib import."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def undeclared(folder: str, allowed: frozenset[str]) -> list[str]:
    providers = packages_distributions()
    missing = []
    for module, where in sorted(third_party_imports(folder).items()):
        distributions = {normalized(d) for d in providers.get(module, [])}
        if not distributions & allowed:
            missing.append(f"{module} ({where}; provided by {sorted(distributions) or 'nothing installed'})")
    return missing


def test_the_walk_sees_the_packages_imports() -> None:
    """Guard for the guard: an import walk that found nothing would pass vacuously."""
    assert {"web3", "pydantic", "eth_abi", "numpy"} <= third_party_imports("keeper").keys()
    assert "hypothesis" in third_party_imports("tests")


def test_the_package_imports_only_declared_dependencies() -> None:
    runtime, _ = declared()
    assert undeclared("keeper", runtime) == []


@pytest.mark.parametrize("folder", ["tests", "bench"])
def test_tests_and_benchmarks_import_only_declared_or_dev_dependencies(folder: str) -> None:
    runtime, dev = declared()
    assert undeclared(folder, runtime | dev) == []


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("web3>=7.14,<8", "web3"),
        ("PyYAML", "pyyaml"),
        ("eth_abi>=5", "eth-abi"),
        ("types-PyYAML", "types-pyyaml"),
    ],
)
def test_requirement_names_are_normalized(requirement: str, name: str) -> None:
    assert requirement_name(requirement) == name
