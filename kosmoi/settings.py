"""The base of every settings model: strict (unknown keys are errors) and frozen.

Each package owns the settings of what it builds (``targets.court.CourtConfig``,
``targets.sentinels.AuditorConfig``, ...); ``sim.config`` composes them into
the experiment file, so a field and its default are defined once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """A strict, frozen settings model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
