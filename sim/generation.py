"""Wiring of attack-generation backends and the budget ledger for a run.

The driver owns the shared pieces — the budget ledger (one Ray actor over the
SQLite file, pinned to the driver's node) and, for the ``vllm`` grunt backend,
the GPU engine actor — and every worker builds its own clients around them.
"""

from __future__ import annotations

import os
from typing import Any

from attackers.backends import PROVIDERS, BudgetedBackend, ChatCompletionsBackend, GenerationBackend, VLLMEngine, VLLMEngineBackend, require_vllm
from attackers.budget import DEFAULT_POLICY, BudgetLedger, Caps, Refusal, default_ledger_path
from attackers.generation import Pricing
from sim.config import BudgetConfig, ConfigError, Experiment


def caps_for(budget: BudgetConfig) -> Caps:
    """The sniper caps at the configured DEFCON level.

    A level listed under ``budget.policy`` replaces that level's default caps
    entirely (an omitted or null cap is no cap), so the meaning of a config
    does not depend on which keys were spelled out.
    """
    override = budget.policy.get(budget.defcon)
    if override is None:
        return DEFAULT_POLICY[budget.defcon]
    return Caps(**override.model_dump())


def ledger_path(budget: BudgetConfig) -> str:
    return budget.ledger or str(default_ledger_path())


def check_provider_keys(exp: Experiment) -> None:
    """Fail before any work starts when a sniper provider has no key in the environment."""
    sniper = exp.attackers.sniper
    if not sniper.count:
        return
    for index, provider in enumerate(sniper.providers):
        names = PROVIDERS.get(provider.provider).key_variables
        if not any(os.environ.get(name) for name in names):
            raise ConfigError(
                f"attackers.sniper.providers.{index}: provider {provider.provider!r} needs {' or '.join(names)} in the environment "
                "(the SDK's own variable; keys are never read from files, logged or stored)"
            )


class RayLedger:
    """The ledger behind a Ray actor, with the :class:`attackers.backends.LedgerClient` interface."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def reserve(self, tier: str, provider: str, model: str, estimate_usd: float, caps: Caps, run_id: str = "") -> int | Refusal:
        import ray

        return ray.get(self.handle.reserve.remote(tier, provider, model, estimate_usd, caps, run_id))

    def settle(self, reservation: int, cost_usd: float, note: str = "") -> None:
        import ray

        ray.get(self.handle.settle.remote(reservation, cost_usd, note))

    def release(self, reservation: int, note: str = "") -> None:
        import ray

        ray.get(self.handle.release.remote(reservation, note))


def start_shared_actors(ray: Any, exp: Experiment) -> dict[str, Any]:
    """Actors every worker shares: the ledger (if snipers run) and the vLLM engine (if configured)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    shared: dict[str, Any] = {}
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    if exp.attackers.sniper.count:
        shared["ledger"] = ray.remote(num_cpus=0)(BudgetLedger).options(scheduling_strategy=here).remote(ledger_path(exp.budget))
    llm = exp.attackers.grunt.llm
    if exp.attackers.grunt.uses_model and llm is not None and llm.backend == "vllm":
        require_vllm()
        shared["vllm"] = ray.remote(num_gpus=llm.num_gpus, num_cpus=0)(VLLMEngine).remote(llm.model, dict(llm.engine_args))
    return shared


def backend_keys(exp: Experiment) -> list[str]:
    """Names of the generation backends an experiment needs ('grunt', 'sniper:0', ...)."""
    keys = ["grunt"] if exp.attackers.grunt.uses_model else []
    if exp.attackers.sniper.count:
        keys += [f"sniper:{i}" for i in range(len(exp.attackers.sniper.providers))]
    return keys


def build_backends(exp: Experiment, shared: dict[str, Any], run_id: str) -> dict[str, GenerationBackend]:
    """The generation backends of one worker process."""
    backends: dict[str, GenerationBackend] = {}
    grunt = exp.attackers.grunt
    if grunt.uses_model and grunt.llm is not None:
        llm = grunt.llm
        if llm.backend == "vllm":
            backends["grunt"] = VLLMEngineBackend(llm.model, actor=shared["vllm"])
        else:
            backends["grunt"] = ChatCompletionsBackend(
                llm.model,
                provider="endpoint",
                base_url=llm.base_url,
                api_key=os.environ.get("OPENAI_API_KEY") or "not-needed-for-local-servers",
                concurrency=llm.concurrency,
                timeout_s=llm.timeout_s,
                max_retries=llm.max_retries,
            )
    sniper = exp.attackers.sniper
    if sniper.count:
        caps = caps_for(exp.budget)
        ledger = RayLedger(shared["ledger"]) if "ledger" in shared else BudgetLedger(ledger_path(exp.budget))
        for index, provider in enumerate(sniper.providers):
            pricing = Pricing(provider.input_usd_per_mtok, provider.output_usd_per_mtok)
            make = PROVIDERS.get(provider.provider).factory
            inner = make(provider.model, pricing=pricing, concurrency=sniper.concurrency, timeout_s=sniper.timeout_s, max_retries=sniper.max_retries)
            backends[f"sniper:{index}"] = BudgetedBackend(inner, ledger, caps, "sniper", pricing, run_id)
    return backends
