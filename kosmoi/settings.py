"""The base of every settings model: strict (unknown keys are errors) and frozen.

Each package owns the settings of what it builds (``targets.court.CourtConfig``,
``targets.sentinels.AuditorConfig``, ...); ``sim.config`` composes them into
the experiment file, so a field and its default are defined once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class Settings(BaseModel):
    """A strict, frozen settings model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=Settings)


def validated_options(model: type[S], owner: str, options: Mapping[str, Any]) -> S:
    """A registered part's ``options`` (from the experiment file) as ``model``, or a ValueError naming the part and the first bad option."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "options"
        raise ValueError(f"{owner}: {where}: {first['msg']}") from None
