"""Deprecated alias: run aggregations moved to :mod:`results.analysis` (the read side has its own package).

Kept so that notebooks written against ``from sim import analysis`` keep working;
it will be removed in a later release.
"""

from __future__ import annotations

import warnings

from results.analysis import *  # noqa: F403 - the alias re-exports the module's public names

warnings.warn("sim.analysis moved to results.analysis; `from results import analysis`", DeprecationWarning, stacklevel=2)
