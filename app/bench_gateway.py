"""Benchmark of the MCP tool gateway: per-call latency over MCP on localhost against the in-process gateway.

The server is started in this process's event loop (uvicorn on a free port);
the client is the official ``mcp`` client over streamable HTTP with a bearer
token, one session, calls in sequence — the latency an agent's tool call pays.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from app.bench_guards import median_and_p99
from targets.gateway import ToolGateway, gateway_stack, mint_agent_token
from targets.mcp_gateway import build_app
from targets.rules import load_ruleset

CALLS: tuple[tuple[str, dict[str, str]], ...] = (("catalog_list", {}), ("orders_get", {"order_id": "20001"}), ("catalog_get", {"sku": "SKU-1001"}))
KEY = 4242


@dataclass(frozen=True, slots=True)
class Latency:
    calls: int
    p50_us: float
    p99_us: float


def _percentiles(samples: list[float]) -> Latency:
    p50, p99 = median_and_p99(samples)
    return Latency(len(samples), p50 * 1e6, p99 * 1e6)


def in_process(calls: int) -> Latency:
    gateway = ToolGateway(gateway_stack(load_ruleset("builtin:baseline"), KEY))
    token = mint_agent_token(KEY, "support", time.time())
    samples = []
    for i in range(calls):
        name, arguments = CALLS[i % len(CALLS)]
        started = time.perf_counter()
        gateway.call(token, name, arguments, time.time())
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


async def _over_mcp(calls: int) -> Latency:
    import httpx2
    import uvicorn
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    url = f"http://127.0.0.1:{port}/mcp"
    gateway = ToolGateway(gateway_stack(load_ruleset("builtin:baseline"), KEY))
    server = uvicorn.Server(uvicorn.Config(build_app(gateway, url), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    token = mint_agent_token(KEY, "support", time.time(), ttl_s=3600)
    samples = []
    try:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http, Client(streamable_http_client(url, http_client=http)) as client:
            for i in range(calls):
                name, arguments = CALLS[i % len(CALLS)]
                started = time.perf_counter()
                await client.call_tool(name, arguments)
                samples.append(time.perf_counter() - started)
    finally:
        server.should_exit = True
        await serving
    return _percentiles(samples)


def over_mcp(calls: int) -> Latency:
    return asyncio.run(_over_mcp(calls))
