"""The labelled text every corpus, loader and evaluation shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ATTACK = "attack"
BENIGN = "benign"
LABELS = (ATTACK, BENIGN)
SPLITS = ("train", "validation", "eval")  # sources are assigned whole to one split

# In-scope attack categories: what an input guard in front of an agent must stop.
ATTACK_CATEGORIES = ("prompt_injection", "indirect_injection", "jailbreak", "exfiltration", "obfuscation", "code_injection")


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One text with its ground truth and where it came from."""

    text: str
    label: str  # attack | benign
    category: str  # an ATTACK_CATEGORIES entry for attacks; chat, instruction, code, document, ... for benign
    source: str  # the declared source it came from (evolve.corpus.sources)
    licence: str = ""
    split: str = ""  # train | validation | eval ("" for a user's file)
    origin: str = ""  # file or id inside the source
    framing: str = ""  # the id of the wrapper our builder put around real text ("" = the text as published)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_attack(self) -> bool:
        return self.label == ATTACK
