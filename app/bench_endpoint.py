"""`immune bench endpoint`: what attacking a deployed agent over HTTP and MCP costs, against the in-process LLM victim.

Both sides run the same agent loop against the same scripted model server
(one tool call, then an answer), so the difference is the harness's own
transport: in process, the ``llm`` victim calls the model and runs the tool
through the stack directly; over the wire, the ``endpoint`` victim posts to
the reference agent (``immune agent serve``, here in a thread), which opens
an MCP session on the run's episode tool server, lists the tools and calls
one with the episode's token. Episodes alternate between the two in one
process, so a noisy machine slows both alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.bench_guards import median_and_p99
from kosmoi.types import Request
from targets.background_server import BackgroundServer
from targets.endpoint import EndpointConfig
from targets.llm_victim import LLMVictimConfig
from targets.reference_agent import ReferenceAgent, ReferenceAgentConfig
from targets.reference_agent import build_app as agent_app
from targets.rules import load_ruleset
from targets.stack import StackSettings, StagingStack


def scripted_model_app() -> Any:
    """A model server speaking the Chat Completions wire format: asks for ``catalog_list`` once, then answers."""
    from starlette.applications import Starlette
    from starlette.requests import Request as HttpRequest
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request: HttpRequest) -> JSONResponse:
        body = await request.json()
        answered = any(message.get("role") == "tool" for message in body.get("messages", []))
        if answered or not body.get("tools"):
            message: dict[str, Any] = {"role": "assistant", "content": "Here is our catalog."}
        else:
            call = {"id": "call_0", "type": "function", "function": {"name": "catalog_list", "arguments": "{}"}}
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return JSONResponse(
            {
                "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop" if answered else "tool_calls"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )  # fmt: skip

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@dataclass(frozen=True, slots=True)
class EndpointBench:
    """Per-episode latency and throughput of each way of reaching the agent."""

    episodes: int
    in_process: list[float]
    over_endpoint: list[float]

    def rows(self) -> list[tuple[str, float, float, float]]:
        """(label, episodes/s, p50 ms, p99 ms) for each side."""
        out = []
        for label, samples in (("llm victim, in process", self.in_process), ("endpoint victim: HTTP + MCP tools", self.over_endpoint)):
            p50, p99 = median_and_p99(samples)
            out.append((label, len(samples) / sum(samples), p50 * 1e3, p99 * 1e3))
        return out


def run_endpoint_bench(episodes: int = 200, warmup: int = 10) -> EndpointBench:
    """Alternate ``episodes`` episodes between the in-process LLM victim and the endpoint victim."""
    ruleset = load_ruleset("builtin:baseline")
    model = BackgroundServer(scripted_model_app(), name="scripted model").start()
    model_url = f"http://127.0.0.1:{model.port}/v1"
    agent = BackgroundServer(agent_app(ReferenceAgent(ReferenceAgentConfig(model_url=model_url, model="scripted"))), name="reference agent").start()
    try:
        local = StagingStack(StackSettings(llm_victim=LLMVictimConfig(base_url=model_url, model="scripted")), ruleset, seed=1, replica=0, run_nonce="bench")
        remote = StagingStack(StackSettings(endpoint=EndpointConfig(url=f"http://127.0.0.1:{agent.port}/v1")), ruleset, seed=1, replica=0, run_nonce="bench")
        samples: dict[int, list[float]] = {0: [], 1: []}
        for i in range(warmup + episodes):
            for side, stack in enumerate((local, remote)):
                request = Request(f"b{side}-{i}", "cust-0001", "support", "What products do you sell?", None, float(i))
                token = stack.login("cust-0001", float(i))
                started = time.perf_counter()
                outcome = stack.handle(request, token)
                elapsed = time.perf_counter() - started
                if outcome.tool_calls != 1:
                    raise RuntimeError(f"bench episode did not make its tool call: {outcome}")
                if i >= warmup:
                    samples[side].append(elapsed)
        return EndpointBench(episodes, samples[0], samples[1])
    finally:
        agent.close()
        model.close()
