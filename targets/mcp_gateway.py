"""The tool gateway as a real MCP server (the official ``mcp`` SDK, streamable HTTP).

Agents connect with a bearer token in the ``Authorization`` header; the SDK's
bearer middleware asks :class:`BearerVerifier` (our EdDSA tokens: signature,
expiry, revocation) on every HTTP request, and each ``tools/call`` goes
through :class:`~targets.gateway.ToolGateway` (warrants, scope, business
checks, the output guard, the event log). ``tools/list`` serves the company's
catalog (:mod:`targets.tool_catalog`), whose entries agents pin by hash
(:mod:`targets.tool_manifest`).

The server runs on the gateway's own clock (wall-clock seconds); every
``window_s`` the sentinels and the court run over the window's events, and
the events are appended to Parquet under the output directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from targets.gateway import GatewayResult, ToolGateway
from targets.identity import AuthError
from targets.tool_catalog import TOOL_NAMES, description, input_schema
from targets.tool_manifest import ToolDescriptor

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class ToolService(Protocol):
    """What an MCP tool server serves: one tool call with the caller's bearer token (the gateway, or a run's episode router)."""

    def call(self, token: str, name: str, arguments: Any, now: float) -> GatewayResult: ...


class BearerCheck(Protocol):
    """The SDK's ``TokenVerifier``: the access token behind a bearer string, or None to refuse it (401)."""

    async def verify_token(self, token: str) -> Any: ...


class BearerVerifier:
    """The SDK's ``TokenVerifier`` over the gateway's identity layer (a refused token is an event)."""

    def __init__(self, gateway: ToolGateway, clock: Clock = time.time) -> None:
        self.gateway = gateway
        self.clock = clock

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        claims = self.gateway.authenticate(token, self.clock(), "mcp", "mcp")
        if isinstance(claims, AuthError):
            return None
        return AccessToken(token=token, client_id=claims.subject, scopes=sorted(claims.scopes), expires_at=int(claims.expires_at), subject=claims.subject)


def catalog_descriptors() -> list[ToolDescriptor]:
    """The gateway's own tools as the manifest check sees them."""
    return [ToolDescriptor(name, description(name), input_schema(name)) for name in TOOL_NAMES]


def listed_descriptors(result: Any) -> list[ToolDescriptor]:
    """The tools of an MCP ``tools/list`` result (any server), for :func:`targets.tool_manifest.check_tools`."""
    return [ToolDescriptor(str(tool.name), str(tool.description or ""), dict(tool.input_schema or {})) for tool in result.tools]


def build_server(service: ToolService, clock: Clock = time.time) -> Any:
    """The low-level MCP server: ``tools/list`` from the catalog, ``tools/call`` through ``service``."""
    import mcp_types as types
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.lowlevel import Server

    tools = [types.Tool(name=tool.name, description=tool.description, input_schema=dict(tool.input_schema)) for tool in catalog_descriptors()]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> Any:
        access = get_access_token()
        token = access.token if access is not None else ""
        result = service.call(token, params.name, params.arguments or {}, clock())
        return types.CallToolResult(content=[types.TextContent(type="text", text=result.text)], is_error=not result.ok)

    return Server(
        "kosmoi-tool-gateway",
        version="1",
        instructions="The staging company's tools. Every call needs a short-lived bearer token with the tool's scope.",
        get_tool_input_schema=lambda name: input_schema(name) if name in TOOL_NAMES else None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def build_app(service: ToolService, url: str, clock: Clock = time.time, verifier: BearerCheck | None = None) -> Any:
    """The Starlette app serving ``service`` at ``url`` (its ``/mcp`` path), bearer auth required.

    ``verifier`` checks each request's bearer token; by default the gateway's identity layer (``service`` must be a
    :class:`~targets.gateway.ToolGateway` then).
    """
    from mcp.server.auth.settings import AuthSettings
    from pydantic import AnyHttpUrl

    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    auth = AuthSettings(issuer_url=AnyHttpUrl(url.rsplit("/", 1)[0]), resource_server_url=AnyHttpUrl(url), required_scopes=None, validate_token_resource=False)
    if verifier is None:
        if not isinstance(service, ToolGateway):
            raise TypeError("build_app needs a verifier for a tool service that is not a ToolGateway")
        verifier = BearerVerifier(service, clock)
    server = build_server(service, clock)
    return server.streamable_http_app(auth=auth, token_verifier=verifier, host=host, json_response=True)


async def _windows(gateway: ToolGateway, window_s: float, out: Path | None, clock: Clock) -> None:
    """Every ``window_s``: sentinels and court over the closed window, then the events to Parquet."""
    import pyarrow.parquet as pq

    start = clock()
    part = 0
    while True:
        await asyncio.sleep(window_s)
        end = clock()
        cases, warrants = gateway.close_window(start, end)
        if cases:
            log.info("window %.0f-%.0f: %d cases, %d warrants", start, end, len(cases), len(warrants))
        start = end
        events = gateway.stack.log.drain("gateway")
        if out is not None and events.num_rows:
            (out / "events").mkdir(parents=True, exist_ok=True)
            pq.write_table(events, out / "events" / f"part-{part:06d}.parquet")
            part += 1


def serve(gateway: ToolGateway, host: str = "127.0.0.1", port: int = 8765, *, window_s: float = 60.0, out: Path | None = None) -> None:
    """Serve until interrupted (uvicorn, one event loop: tool calls are short and run in turn)."""
    import uvicorn

    url = f"http://{host}:{port}/mcp"
    app = build_app(gateway, url)

    @contextlib.asynccontextmanager
    async def lifespan_with_windows(inner: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(_windows(gateway, window_s, out, time.time))
        try:
            async with inner:
                yield
        finally:
            task.cancel()

    inner_lifespan = app.router.lifespan_context
    app.router.lifespan_context = lambda a: lifespan_with_windows(inner_lifespan(a))
    log.info("tool gateway on %s (%d tools)", url, len(TOOL_NAMES))
    uvicorn.run(app, host=host, port=port, log_level="warning")
