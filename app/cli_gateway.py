"""`immune gateway ...`: serve the staging company's tools over MCP, and mint agent tokens for it; `immune agent serve`: the reference agent."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import console, fail, load_rules, setup_logging
from targets.rules import RuleSetError

gateway_app = typer.Typer(no_args_is_help=True, help="The MCP tool gateway: zero trust and the output guard for tool traffic.")
DEFAULT_KEY = Path("runs/gateway/idp.key")


@gateway_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (keep 127.0.0.1 unless it is behind a proxy you trust).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
    rules: Annotated[str, typer.Option(help="Rule set of the output guard: builtin:NAME, a JSON file or models:/...")] = "builtin:baseline",
    key_file: Annotated[Path, typer.Option(help="The gateway IdP's secret key (created, mode 0600, when missing).")] = DEFAULT_KEY,
    out: Annotated[Path, typer.Option(help="Where the event log is written as Parquet (events/part-*.parquet).")] = Path("runs/gateway"),
    window_s: Annotated[float, typer.Option(min=0.1, help="Seconds per sentinel window.")] = 60.0,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Serve the company's tools as an MCP server (streamable HTTP at /mcp); every call needs a bearer token."""
    setup_logging(verbose)
    from targets.gateway import ToolGateway, gateway_stack, load_or_create_key
    from targets.mcp_gateway import serve as serve_mcp

    try:
        ruleset = load_rules(rules)
        key = load_or_create_key(key_file)
    except (RuleSetError, ValueError, OSError) as exc:
        fail(str(exc))
    _check_port(host, port)
    gateway = ToolGateway(gateway_stack(ruleset, key))
    console.print(f"tool gateway on http://{host}:{port}/mcp — rules {ruleset.name} v{ruleset.version}; tokens: immune gateway token --key-file {key_file}")
    serve_mcp(gateway, host, port, window_s=window_s, out=out)


@gateway_app.command("token")
def token(
    agent: Annotated[str, typer.Option(help="The agent the token is for (support, sales, finance, ops); it carries that agent's scopes.")],
    key_file: Annotated[Path, typer.Option(help="The gateway IdP's secret key.")] = DEFAULT_KEY,
    ttl_s: Annotated[float, typer.Option(min=1.0, help="Seconds the token is valid.")] = 300.0,
) -> None:
    """Print a short-lived bearer token for one agent (keep it out of logs and shell history)."""
    from targets.gateway import load_key, mint_agent_token

    try:
        key = load_key(key_file)
        typer.echo(mint_agent_token(key, agent, time.time(), ttl_s))
    except (ValueError, OSError) as exc:
        fail(str(exc))


@gateway_app.command("pins")
def pins(
    out: Annotated[Path, typer.Option(help="Where to write the approved manifest (JSON).")] = Path("runs/gateway/tool-pins.json"),
    rules: Annotated[str, typer.Option(help="Rule set whose input guard screens the descriptions for hidden instructions.")] = "builtin:baseline",
) -> None:
    """Approve the gateway's own tools: pin each one's name, description and schema by sha256."""
    from targets.input_guard import InputGuard
    from targets.mcp_gateway import catalog_descriptors
    from targets.tool_manifest import pin_tools, save_pins

    try:
        approved = pin_tools(catalog_descriptors(), InputGuard(load_rules(rules)))
        out.parent.mkdir(parents=True, exist_ok=True)
        save_pins(out, "kosmoi-tool-gateway", approved)
    except (RuleSetError, ValueError, OSError) as exc:
        fail(str(exc))
    console.print(f"pinned {len(approved)} tools in {out}")


agent_app = typer.Typer(no_args_is_help=True, help="The reference agent: the built-in agent loop as a chat-completions service, its tools over MCP.")


@agent_app.command("serve")
def agent_serve(
    model_url: Annotated[str, typer.Option(help="The model server's OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (key: OPENAI_API_KEY).")],
    model: Annotated[str, typer.Option(help="The model name to ask for.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8790,
    max_steps: Annotated[int, typer.Option(min=1, max=16, help="Model calls per request.")] = 4,
    tool_server: Annotated[str, typer.Option(help="A fixed MCP tool server (e.g. the gateway's http://127.0.0.1:8765/mcp), when requests name none.")] = "",
    tool_token_env: Annotated[str, typer.Option(help="Environment variable holding the fixed tool server's bearer token.")] = "",
    pins: Annotated[Path | None, typer.Option(help="Approved tool pins (immune gateway pins): tools failing the check are not offered.")] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Serve the reference agent at /v1/chat/completions: a model with the tool server's tools, called over MCP."""
    setup_logging(verbose)
    from pydantic import ValidationError

    from targets.reference_agent import ReferenceAgentConfig
    from targets.reference_agent import serve as serve_agent

    try:
        config = ReferenceAgentConfig(model_url=model_url, model=model, max_steps=max_steps, tool_server=tool_server, tool_token_env=tool_token_env, pins=pins)
    except ValidationError as exc:
        fail(f"agent settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    _check_port(host, port)
    console.print(f"reference agent on http://{host}:{port}/v1 — model {model} at {model_url}")
    serve_agent(config, host, port)


def _check_port(host: str, port: int) -> None:
    """A clear error now, rather than uvicorn's exit after the banner."""
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart is not refused for TIME_WAIT
            probe.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(agent_app, name="agent")
