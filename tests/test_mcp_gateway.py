"""The MCP tool gateway: zero trust and the output guard for tool traffic, as a real server and a real client.

The in-process tests drive :class:`targets.gateway.ToolGateway` directly; the
process tests start ``immune gateway serve`` and talk to it with the official
``mcp`` client over streamable HTTP, and start a hostile MCP server to check
that an agent refuses poisoned, shadowing, changed and unapproved tools.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kosmoi.types import EventKind, SubjectKind, Warrant, WarrantAction
from targets.gateway import ToolGateway, gateway_stack, load_key, load_or_create_key, mint_agent_token
from targets.input_guard import InputGuard
from targets.mcp_gateway import catalog_descriptors, listed_descriptors
from targets.rules import load_ruleset
from targets.tool_catalog import TOOL_NAMES
from targets.tool_manifest import check_tools, findings_to_cases, load_pins, pin_tools, save_pins
from tests.conftest import ROOT, immune_cmd
from tests.fakes.processes import free_port, wait_for_port

NOW = 1_000_000.0


@pytest.fixture(scope="module")
def baseline():
    return load_ruleset("builtin:baseline")


@pytest.fixture()
def gateway(baseline):
    return ToolGateway(gateway_stack(baseline, key_seed=12345))


def _token(agent: str, now: float = NOW, key: int = 12345, ttl: float = 300.0) -> str:
    return mint_agent_token(key, agent, now, ttl)


def _events(gateway: ToolGateway) -> pd.DataFrame:
    return gateway.stack.log.drain("t").to_pandas()


# --- in process ------------------------------------------------------------------------------------


def test_a_call_inside_the_agents_scope_runs_and_its_result_is_guarded(gateway):
    listed = gateway.call(_token("support"), "catalog_list", {}, NOW)
    assert listed.ok and "aurora desk lamp" in listed.text
    orders = gateway.call(_token("support"), "orders_get", {"order_id": "*"}, NOW)
    assert orders.ok and "[REDACTED:pii.email]" in orders.text and "@" not in orders.text
    assert "pii.email" in orders.rule_ids
    events = _events(gateway)
    assert list(events["kind"]) == ["tool_call", "guard_output", "tool_call", "guard_output"]
    assert set(events["identity"]) == {"agent:support"}


def test_secrets_read_through_the_gateway_never_leave_it(gateway):
    secret = gateway.call(_token("ops"), "vault_read", {"name": "*"}, NOW)
    assert secret.ok
    for value in gateway.stack.company.vault.values():
        assert value not in secret.text


def test_calls_outside_the_scope_or_with_a_bad_token_are_refused_and_logged(gateway):
    assert gateway.call(_token("support"), "vault_read", {"name": "*"}, NOW).refusal == "auth:scope"
    expired = _token("support", now=NOW - 1_000)
    assert gateway.call(expired, "catalog_list", {}, NOW).refusal == "auth:expired"
    forged = _token("support", key=999)  # signed with a key the gateway does not hold
    assert gateway.call(forged, "catalog_list", {}, NOW).refusal == "auth:forged"
    assert gateway.call("not-a-token", "catalog_list", {}, NOW).refusal == "auth:malformed"
    kinds = list(_events(gateway)["kind"])
    assert kinds == [EventKind.TOOL_DENIED.value, EventKind.AUTH_DENIED.value, EventKind.AUTH_DENIED.value, EventKind.AUTH_DENIED.value]
    assert gateway.stats.refused == {"auth": 4}


def test_business_limits_and_bad_arguments_are_refused(gateway):
    over = gateway.call(_token("finance"), "finance_transfer", {"to": "DE89370400440532013000", "amount": 50_000}, NOW)
    assert over.refusal == "policy" and "business.transfer-limit" in over.rule_ids
    assert gateway.effects.transfers == []  # nothing moved
    assert gateway.call(_token("support"), "no_such_tool", {}, NOW).refusal == "invalid"
    assert gateway.call(_token("support"), "catalog_get", ["sku"], NOW).refusal == "invalid"
    assert gateway.call(_token("support"), "catalog_get", {"sku": "x" * 10_000}, NOW).refusal == "invalid"


def test_a_warrant_revokes_the_caller_at_the_gateway(gateway):
    token = _token("support")
    assert gateway.call(token, "catalog_list", {}, NOW).ok
    gateway.stack.enforce(Warrant("w1", WarrantAction.REVOKE_TOKEN, "agent:support", SubjectKind.IDENTITY, ("c1",), "test", NOW))
    refused = gateway.call(token, "catalog_list", {}, NOW + 1)
    assert not refused.ok and refused.refusal in ("warrant", "auth:revoked")
    gateway.stack.enforce(Warrant("w2", WarrantAction.QUARANTINE_AGENT, "sales", SubjectKind.AGENT, ("c2",), "test", NOW))
    assert gateway.call(_token("sales"), "catalog_list", {}, NOW + 1).refusal == "warrant"


def test_the_key_file_is_created_private_and_malformed_keys_are_named(tmp_path):
    path = tmp_path / "idp.key"
    key = load_or_create_key(path)
    assert load_key(path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "bad.key").write_text("not hex\n")
    with pytest.raises(ValueError, match=r"bad\.key: not a gateway key"):
        load_key(tmp_path / "bad.key")
    with pytest.raises(ValueError, match="no gateway key"):
        load_key(tmp_path / "missing.key")
    with pytest.raises(ValueError, match="unknown agent 'root'"):
        mint_agent_token(key, "root", NOW)


def test_serve_says_so_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*immune_cmd(), "gateway", "serve", "--port", str(port), "--key-file", str(tmp_path / "k.key")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


# --- the manifest ----------------------------------------------------------------------------------


def test_the_catalog_can_be_pinned_and_pins_round_trip(tmp_path, baseline):
    guard = InputGuard(baseline)
    pins = pin_tools(catalog_descriptors(), guard)
    assert set(pins) == set(TOOL_NAMES)
    save_pins(tmp_path / "pins.json", "gateway", pins)
    assert load_pins(tmp_path / "pins.json") == pins
    approved, findings = check_tools(catalog_descriptors(), pins, guard)
    assert len(approved) == len(TOOL_NAMES) and findings == []
    (tmp_path / "bad.json").write_text('{"format": "kosmoi-tool-pins/1", "pins": {"a": "nothex"}}')
    with pytest.raises(ValueError, match=r"bad\.json: every pin must be"):
        load_pins(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not a tool-pins file"):
        load_pins(tmp_path / "pins-missing.json")


# --- real processes --------------------------------------------------------------------------------


@pytest.fixture()
def served_gateway(tmp_path) -> Iterator[tuple[str, Path, Path]]:
    port = free_port()
    key, out = tmp_path / "idp.key", tmp_path / "out"
    cmd = [*immune_cmd(), "gateway", "serve", "--port", str(port), "--key-file", str(key), "--out", str(out), "--window-s", "0.5"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp", key, out
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _session(url: str, token: str | None, calls: list[tuple[str, dict[str, object]]]) -> tuple[list[str], list[tuple[bool, str]]]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers) as http, Client(streamable_http_client(url, http_client=http)) as client:
        tools = await client.list_tools()
        results = []
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            results.append((bool(result.is_error), result.content[0].text))
        return [t.name for t in tools.tools], results


def _mint(key: Path, agent: str) -> str:
    out = subprocess.run([*immune_cmd(), "gateway", "token", "--agent", agent, "--key-file", str(key), "--ttl-s", "60"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.slow
def test_a_real_mcp_client_lists_and_calls_tools_through_the_served_gateway(served_gateway):
    url, key, out = served_gateway
    names, results = asyncio.run(_session(url, _mint(key, "support"), [("catalog_list", {}), ("vault_read", {"name": "*"}), ("orders_get", {"order_id": "*"})]))
    assert names == list(TOOL_NAMES)
    (listed_error, listed), (vault_error, vault), (orders_error, orders) = results
    assert not listed_error and "aurora desk lamp" in listed
    assert vault_error and "forbidden: scope" in vault
    assert not orders_error and "[REDACTED:pii.email]" in orders
    deadline = time.monotonic() + 20
    while not list((out / "events").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    events = pd.read_parquet(out / "events")
    assert {"tool_call", "tool_denied", "guard_output"} <= set(events["kind"])


@pytest.mark.slow
def test_the_served_gateway_refuses_a_missing_forged_or_expired_token(served_gateway, tmp_path):
    import httpx2
    from mcp import MCPError

    url, key, _out = served_gateway
    other = load_or_create_key(tmp_path / "other.key")
    bad = {
        "missing": None,
        "forged": mint_agent_token(other, "support", time.time()),
        "expired": mint_agent_token(load_key(key), "support", time.time() - 1_000, 60),
    }
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for why, token in bad.items():
        headers = {"Accept": "application/json, text/event-stream", **({"Authorization": f"Bearer {token}"} if token else {})}
        response = httpx2.post(url, json=initialize, headers=headers, timeout=10)
        assert response.status_code == 401, (why, response.status_code)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), why
        with pytest.raises(ExceptionGroup) as raised:
            asyncio.run(_session(url, token, [("catalog_list", {})]))
        assert raised.group_contains(MCPError), why


@pytest.mark.slow
def test_an_agent_refuses_poisoned_shadowing_changed_and_unapproved_tools(tmp_path, baseline):
    from mcp import Client

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.rogue_mcp_server", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)

        async def listing():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                return await client.list_tools()

        listed = listed_descriptors(asyncio.run(listing()))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    guard = InputGuard(baseline)
    pins = pin_tools(catalog_descriptors(), guard)
    approved, findings = check_tools(listed, pins, guard)
    assert approved == []
    assert {f.tool: f.kind for f in findings} == {"catalog_list": "poisoned", "vаult_read": "shadowing", "orders_get": "changed", "weather_now": "unapproved"}
    cases = findings_to_cases(findings, "rogue-tools", 1.0)
    assert {c.sentinel for c in cases} == {"supply-chain"} and {c.rule for c in cases} == {"poisoned", "shadowing", "changed", "unapproved"}
    assert max(c.severity for c in cases) == 5
