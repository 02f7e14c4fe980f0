"""Dependencies point one way (docs/architecture.md): each layer imports only the layers below it.

    kosmoi  <-  targets, attackers  <-  results  <-  sim  <-  evolve  <-  app

``targets`` (the defense stack) and ``attackers`` know nothing of each other,
of the engine or of the application; the engine (``sim``) knows nothing of the
evolution loop or the application; only ``app`` imports both ``sim`` and ``evolve``.
"""

from __future__ import annotations

import ast
import os

import pytest

from tests.conftest import ROOT

LAYERS = ("kosmoi", "targets", "attackers", "results", "sim", "evolve", "app")
FORBIDDEN = {
    "kosmoi": {"targets", "attackers", "results", "sim", "evolve", "app"},
    "targets": {"attackers", "results", "sim", "evolve", "app"},
    "attackers": {"targets", "results", "sim", "evolve", "app"},
    "results": {"sim", "evolve", "app"},
    "sim": {"evolve", "app"},
    "evolve": {"app"},
    "app": set(),
}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_upstream(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"{package} must not import {sorted(FORBIDDEN[package])}: {offenders}"


def test_every_package_has_a_place_in_the_layers():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name != "tests"}
    assert packages == set(LAYERS) == set(FORBIDDEN), f"packages {sorted(packages)} vs layers {LAYERS}"


def test_the_old_analysis_import_still_works_and_says_where_it_moved():
    import importlib
    import sys

    sys.modules.pop("sim.analysis", None)
    with pytest.warns(DeprecationWarning, match="results.analysis"):
        old = importlib.import_module("sim.analysis")
    from results import analysis

    assert old.rates is analysis.rates


def test_importing_the_engine_leaves_the_environment_alone():
    """Environment defaults are applied by an explicit call at start-up, not as a side effect of an import."""
    import subprocess
    import sys

    from sim.environment import DEFAULTS

    env = {k: v for k, v in os.environ.items() if k not in DEFAULTS}
    code = f"import os, app.cli, sim.runner, sim.tracking, evolve.loop, evolve.registry; print(sorted(set(os.environ) & set({sorted(DEFAULTS)!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout
    code = "import os; from sim.environment import apply_defaults; apply_defaults(); print(os.environ['RAY_USAGE_STATS_ENABLED'])"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip() == "0"


def test_the_gateway_image_ships_every_package():
    """The Dockerfile copies each package of the layer table (a new package must not be left out of the image)."""
    dockerfile = (ROOT / "deploy" / "gateway.Dockerfile").read_text("utf-8")
    copied = {line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ") and line.split()[1] != "pyproject.toml"}
    assert copied == set(LAYERS)
