"""The LLM gateway: one async Ray actor through which every worker's model calls go.

It owns the generation backends of a run (grunt endpoint or vLLM engine
client, sniper clients behind the budget ledger), so concurrency limits are
global rather than per worker. At most ``max_batches`` batches are served at
once; a worker asking for more waits in ``ray.get`` — backpressure instead of
an unbounded queue. Batches themselves are built by the replicas (every
waiting model-backed campaign at once), so the gateway sees few, large calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from attackers.generation import GenerationRequest, GenerationResult
from sim.config import Experiment


class Gateway:
    """Ray actor body (created with ``max_concurrency`` > 1 so batches overlap)."""

    def __init__(self, experiment: dict[str, Any], shared: dict[str, Any], run_id: str, max_batches: int = 8) -> None:
        from kosmoi.redact import install_log_redaction
        from sim.generation import build_backends

        install_log_redaction()  # this process's logs end up in Ray's log files and the driver's stderr
        self.backends = build_backends(Experiment.model_validate(experiment), shared, run_id)
        self._gate = asyncio.Semaphore(max_batches)
        self.served = 0

    def keys(self) -> list[str]:
        return sorted(self.backends)

    async def generate(self, key: str, requests: list[GenerationRequest]) -> list[GenerationResult]:
        backend = self.backends.get(key)
        if backend is None:
            return [GenerationResult(r.request_id, False, status="error", error=f"no generation backend {key!r}") for r in requests]
        async with self._gate:
            results = await asyncio.to_thread(backend.generate, requests)
        self.served += len(requests)
        return results


class GatewayClient:
    """A worker's view of one gateway backend (the :class:`attackers.backends.GenerationBackend` interface)."""

    def __init__(self, handle: Any, key: str, provider: str = "gateway", model: str = "") -> None:
        self.handle = handle
        self.key = key
        self.provider = provider
        self.model = model

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        import ray

        return ray.get(self.handle.generate.remote(self.key, list(requests))) if requests else []


def start_gateway(ray: Any, exp: Experiment, shared: dict[str, Any], run_id: str) -> Any | None:
    """The gateway actor, if the experiment has model-written attacks."""
    if not (exp.attackers.sniper.count or exp.attackers.grunt.uses_model):
        return None
    actor = ray.remote(num_cpus=0, max_concurrency=64)(Gateway).remote(exp.model_dump(mode="json"), shared, run_id)
    ray.get(actor.keys.remote())
    return actor


def gateway_backends(handle: Any | None, keys: Sequence[str]) -> dict[str, GatewayClient]:
    return {key: GatewayClient(handle, key) for key in keys} if handle is not None else {}
