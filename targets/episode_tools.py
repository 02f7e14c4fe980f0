"""The tools of a staging stack served over MCP to an agent outside the process, one episode at a time.

When the victim is a deployed agent (:mod:`targets.endpoint_victim`), its
tools must still be the staging company's, so the oracle sees every tool call
and every canary. Each worker runs one :class:`EpisodeToolServer`: a real MCP
server (streamable HTTP, the official SDK) in a background thread. For each
episode the victim opens a session — a fresh random bearer token bound to that
episode's ``act`` (the stack's output guard and zero-trust services) — and
hands the server's URL and the token to the agent with the request; the agent
calls tools with that token, and the calls land in that episode. The token is
refused as soon as the episode's request returns, so a late or replayed call
changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from targets.background_server import BackgroundServer
from targets.gateway import GatewayResult
from targets.tool_catalog import parse_tool_call
from targets.tools import ToolCall, ToolResult
from targets.victim import Act

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 16_384


@dataclass(slots=True)
class _Session:
    agent: str
    act: Act
    calls: list[tuple[ToolCall, ToolResult]] = field(default_factory=list)


class _Verifier:
    """Bearer check: the token must belong to an episode that is running now."""

    def __init__(self, server: EpisodeToolServer) -> None:
        self.server = server

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        agent = self.server.session_agent(token)
        if agent is None:
            return None
        return AccessToken(token=token, client_id=f"agent:{agent}", scopes=[], subject=f"agent:{agent}")


class EpisodeToolServer:
    """An MCP tool server in a background thread that routes each call to the episode whose token it carries."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str = "") -> None:
        self.host = host
        self._requested_port = port
        self._public_url = public_url
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()  # one tool call at a time touches a stack; closing a session waits for it
        self._server: BackgroundServer | None = None
        self.port = 0
        self.refused = 0

    @property
    def url(self) -> str:
        """Where agents reach the tools (``public_url`` when set, for agents that see this host by another name)."""
        return self._public_url or f"http://{self.host}:{self.port}/mcp"

    def start(self) -> EpisodeToolServer:
        """Bind and serve; a port already taken is a clear error."""
        from targets.mcp_gateway import build_app

        # The app's URL only names the resource for the SDK's auth metadata; the bound port is known after binding.
        app = build_app(self, f"http://{self.host}:{self._requested_port or 1}/mcp", verifier=_Verifier(self))
        self._server = BackgroundServer(app, self.host, self._requested_port, "episode tool server").start()
        self.port = self._server.port
        log.info("episode tool server on %s", self.url)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    @contextmanager
    def session(self, agent: str, act: Act) -> Iterator[tuple[str, list[tuple[ToolCall, ToolResult]]]]:
        """A bearer token bound to one episode's ``act`` while the block runs, and the calls made with it."""
        token = secrets.token_urlsafe(24)
        entry = _Session(agent, act)
        with self._lock:
            self._sessions[token] = entry
        try:
            yield token, entry.calls
        finally:
            with self._lock:
                del self._sessions[token]

    def session_agent(self, token: str) -> str | None:
        with self._lock:
            entry = self._sessions.get(token)
        if entry is None:
            self.refused += 1
        return entry.agent if entry is not None else None

    def call(self, token: str, name: str, arguments: Any, now: float) -> GatewayResult:
        """One MCP ``tools/call``: parsed and bounded, then the episode's ``act`` (output guard, zero trust)."""
        import json

        try:
            encoded = json.dumps(arguments if isinstance(arguments, dict) else None)
        except (TypeError, ValueError):
            encoded = "null"
        parsed = parse_tool_call(name, encoded)
        if isinstance(parsed, str):
            return GatewayResult(False, f"error: {parsed}", "invalid")
        with self._lock:
            entry = self._sessions.get(token)
            if entry is None:  # the episode ended between the bearer check and the call
                self.refused += 1
                return GatewayResult(False, "refused: this session has ended", "auth:expired")
            result = entry.act(parsed)
            entry.calls.append((parsed, result))
        if not result.ok:
            return GatewayResult(False, f"error: {result.error}", "tool")
        value = result.value if isinstance(result.value, str) else json.dumps(result.value, ensure_ascii=False, default=str)
        return GatewayResult(True, value[:MAX_RESULT_CHARS])


_shared: dict[tuple[str, int, str], EpisodeToolServer] = {}
_shared_lock = threading.Lock()


def shared_tool_server(host: str, port: int, public_url: str = "") -> EpisodeToolServer:
    """The process's tool server for these settings, started on first use (one per worker, shared by its replicas)."""
    key = (host, port, public_url)
    with _shared_lock:
        server = _shared.get(key)
        if server is None:
            server = _shared[key] = EpisodeToolServer(host, port, public_url).start()
        return server
