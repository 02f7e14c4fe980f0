"""The agent loop: a model with tools, driven through the OpenAI Chat Completions wire format.

One loop serves every real agent the harness runs: the in-process LLM victim
(:mod:`targets.llm_victim`, tools executed through the staging stack) and the
reference agent (:mod:`targets.reference_agent`, tools called over MCP on the
tool gateway, as a production agent would). The loop is bounded
(``max_steps`` model calls); each tool call's name and JSON arguments go to an
``execute`` function whose text answer the model reads next; a provider error
ends the loop with :attr:`LoopResult.error` set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kosmoi.redact import redact

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 4_000  # of one tool result, as the model sees it

Execute = Callable[[str, str], str]  # (tool name, arguments JSON) -> what the model reads back


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """How hard to drive the model."""

    model: str
    max_steps: int = 4
    temperature: float = 0.0
    max_tokens: int = 512


@dataclass(slots=True)
class LoopResult:
    """What the model finally said, and whether the loop ended on a provider error."""

    reply: str = ""
    error: str = ""
    steps: int = 0
    tool_calls: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def run_tool_loop(client: Any, settings: LoopSettings, messages: list[dict[str, Any]], tools: Sequence[dict[str, Any]], execute: Execute, label: str = "") -> LoopResult:
    """Call the model until it answers without tool calls (or ``max_steps`` calls); ``messages`` grows in place."""
    result = LoopResult()
    for _ in range(settings.max_steps):
        result.steps += 1
        try:
            offered = {"tools": list(tools), "tool_choice": "auto"} if tools else {}  # an empty tools list is an error to OpenAI's API
            response = client.chat.completions.create(
                model=settings.model, messages=messages, temperature=settings.temperature, max_tokens=settings.max_tokens, **offered
            )
            message = response.choices[0].message
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
            log.warning("agent model call failed%s: %s", f" for {label}" if label else "", result.error)
            return result
        usage = getattr(response, "usage", None)
        for key in ("prompt_tokens", "completion_tokens"):
            result.usage[key] = result.usage.get(key, 0) + int(getattr(usage, key, 0) or 0)
        tool_calls = list(message.tool_calls or [])
        if not tool_calls:
            result.reply = message.content or ""
            return result
        messages.append(
            {
                "role": "assistant",
                "content": message.content or "",
                "tool_calls": [{"id": tc.id, "type": "function", "function": {"name": tc.function.name, "arguments": tc.function.arguments}} for tc in tool_calls],
            }
        )
        for tc in tool_calls:
            result.tool_calls += 1
            content = execute(tc.function.name, tc.function.arguments or "")
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": content[:MAX_RESULT_CHARS]})
    return result
