"""Requests to, and results from, attack-writing language models."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One prompt for a model that writes an attack."""

    request_id: str  # campaign id + attempt
    system: str
    user: str
    max_tokens: int = 400
    temperature: float = 0.9
    seed: int | None = None


@dataclass(slots=True)
class GenerationResult:
    """What came back (or why nothing did). Costs are in US dollars."""

    request_id: str
    ok: bool
    text: str = ""
    provider: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    retries: int = 0
    status: str = "ok"  # ok | error | refused (budget) | unparsable
    error: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pricing:
    """Per-million-token prices of one model."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens / 1e6 * self.input_usd_per_mtok + output_tokens / 1e6 * self.output_usd_per_mtok

    def estimate(self, request: GenerationRequest) -> float:
        """Upper-bound estimate used for reservations (~4 characters per token, all output tokens used)."""
        prompt_tokens = (len(request.system) + len(request.user)) // 3 + 16
        return self.cost(prompt_tokens, request.max_tokens)
