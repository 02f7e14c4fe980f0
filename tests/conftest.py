"""Shared fixtures: one local Ray instance per test session, small experiments."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Hermetic corpus: a corpus built on this machine (`immune data build`) must not change what the tests
# train, gate and measure on; they use the committed sample, as on a fresh machine (and the goldens do).
os.environ["IMMUNE_CACHE"] = tempfile.mkdtemp(prefix="immune-test-cache-")


def immune_cmd() -> list[str]:
    """How to invoke the CLI the way a user does (the console script of this environment)."""
    script = Path(sys.executable).with_name("immune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs shared by the tests that run simulations in-process."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


TINY_EXPERIMENT = """
name: tiny
seed: 11
simulation:
  replicas: 3
  arrival_window_s: 300
  segment_windows: 2
attackers:
  grunt:
    count: 30
    attempts: 3
benign:
  customers: 9
  vendors: 2
  employees: 2
  requests: 3
tracking:
  enabled: false
"""


@pytest.fixture()
def tiny_experiment():
    from sim.config import parse_experiment

    return parse_experiment(TINY_EXPERIMENT, "tiny.yaml")
