"""A toy input-guard stage, added the way a user adds one: this module plus configuration.

It flags polite requests ("please") with the rule ``toy.polite``; its option
``word`` changes the word. Nothing else in the code base knows it exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kosmoi.types import Action, Verdict
from targets.stages import ScanContext, StageBuild, register_stage

RULE = "toy.polite"


@register_stage("toy-polite", side="input")
class PoliteStage:
    """Flags texts that contain a word (default 'please')."""

    name = "toy-polite"

    def __init__(self, build: StageBuild, options: Mapping[str, Any]) -> None:
        self.word = str(options.get("word", "please")).lower()

    def scan(self, text: str, context: ScanContext) -> Verdict:
        if self.word in context.canon.text:
            return Verdict(Action.FLAG, (RULE,), 0.3, reasons=(f"says {self.word!r}",))
        return Verdict(Action.ALLOW)
