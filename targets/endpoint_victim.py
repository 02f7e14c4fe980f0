"""A deployed agent as the victim: each episode's message goes to the user's own agent over HTTP.

The staging stack still stands around it — identity, the input guard, the
output guard on the reply, the sentinels, the court and the oracle — so a
campaign measures what the agent (and whatever guard it has) lets through.
Ground truth comes from two places:

* **tools**: the agent's tools point at the run's MCP tool server
  (:mod:`targets.episode_tools`); each request carries the server's URL and a
  token bound to that episode, so every tool call the agent makes goes
  through the stack's zero trust and output guard, and the oracle sees its
  effects (transfers, grants, messages, records read);
* **canaries**: the staging agent's system prompt (with its canary) is sent
  as the system message, vault secrets reach the agent only through tools,
  and canaries the user planted in the agent's own context are named by
  environment variable; any of them in a reply is a leak.

A failed request (after the client's bounded retries) ends the turn with
:attr:`~targets.victim.VictimTurn.error` set; the episode is recorded and the
run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from kosmoi.ids import stable_hash64
from kosmoi.redact import redact_known
from targets.conversation import Exchange
from targets.endpoint import EndpointClient, EndpointConfig, EndpointError, EndpointRequest
from targets.llm_victim import is_privileged
from targets.tools import ToolCall, ToolResult
from targets.victim import Act, VictimKnowledge, VictimTurn

log = logging.getLogger(__name__)


class EndpointVictim:
    """The user's agent, reached over HTTP, with the staging company's tools served to it over MCP."""

    def __init__(self, config: EndpointConfig, knowledge: VictimKnowledge) -> None:
        self.config = config
        self.knowledge = knowledge
        self.client = EndpointClient(config)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "knowledge": self.knowledge}  # the HTTP client and tool server are per process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["knowledge"])  # type: ignore[misc]

    def respond(self, text: str, document: str | None, episode_id: str, requester: str, act: Act, history: Sequence[Exchange] = (), conversation_id: str = "") -> VictimTurn:
        """Send one request to the agent; its tool calls arrive at the tool server under this episode's token.

        Inside a conversation (``conversation_id``) every turn goes out under the same session id, so the deployed
        agent keeps its own memory of the conversation; the history is not re-sent.
        """
        c = self.config
        system = f"{self.knowledge.system_prompt} You are the '{self.knowledge.agent}' agent." if c.send_system_prompt else ""
        session = f"{stable_hash64('session', conversation_id or episode_id):016x}"
        from targets.episode_tools import shared_tool_server  # the MCP server stack loads only when a run needs it

        server = shared_tool_server(c.tools.host, c.tools.port, c.tools.public_url) if c.tools.enabled else None
        calls: list[tuple[ToolCall, ToolResult]] = []
        opened = server.session(self.knowledge.agent, act) if server is not None else nullcontext(("", calls))
        with opened as (token, made):
            request = EndpointRequest(text, document, system, session, self.knowledge.agent, requester, server.url if server else "", token)
            try:
                reply = self.client.send(request)
                error = ""
            except EndpointError as exc:
                reply, error = "", str(exc)
                log.warning("endpoint request failed for episode %s: %s", episode_id, error)
            calls = list(made)
        privileged = any(is_privileged(call) for call, _ in calls)
        return VictimTurn(redact_known(reply), True, privileged, False, calls, error=error)
