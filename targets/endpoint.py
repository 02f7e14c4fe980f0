"""A deployed agent over HTTP: where it is, how to talk to it, and a client that survives it misbehaving.

Two wire formats:

* ``openai-chat`` — an OpenAI-compatible ``/chat/completions`` endpoint (an
  agent behind vLLM, LiteLLM, a gateway, or :mod:`targets.reference_agent`),
  driven by the official ``openai`` SDK;
* ``json`` — any JSON API: a request body template whose string leaves may
  hold placeholders (``{message}``, ``{document}``, ``{system}``,
  ``{session}``, ``{agent}``, ``{requester}``, ``{tool_server}``,
  ``{tool_token}``), and a response path (``$.output.text``,
  ``choices[0].message.content``) to the reply text.

Header values may reference environment variables (``Bearer ${AGENT_KEY}``);
they are expanded when the client is built, registered with
:mod:`kosmoi.redact`, and never logged or written to results. Each request
is bounded: a timeout, a response size cap, retries with backoff on
connection errors, timeouts, 429 and 5xx (``Retry-After`` honoured up to a
cap), and a per-process rate limit. A request that still fails raises
:class:`EndpointError` with a redacted reason; the caller records it and the
run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kosmoi.redact import redact, register_secret
from kosmoi.settings import Settings
from targets.http_json import RemoteError, RetryPolicy, check_env_refs, env_refs, extract, parse_path, placeholders, post_json, render, secret_headers

log = logging.getLogger(__name__)

PLACEHOLDERS = ("message", "document", "system", "session", "agent", "requester", "tool_server", "tool_token")


class EndpointError(RemoteError):
    """A request to the endpoint failed after its retries (the message is redacted)."""


class ToolServerConfig(Settings):
    """Where the run serves the staging company's tools to the agent (one MCP server per worker)."""

    enabled: bool = Field(default=True, description="serve tools and pass their URL and a per-episode token to the agent")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0: a free port per worker")
    public_url: str = Field(default="", description="the URL the agent should use, when it reaches this host by another name")
    url_header: str = Field(default="X-Kosmoi-Tool-Server", min_length=1)
    token_header: str = Field(default="X-Kosmoi-Tool-Token", min_length=1)


class EndpointConfig(Settings):
    """A deployed agent to attack: its address, wire format, credentials (by environment variable) and limits."""

    url: str = Field(pattern=r"^https?://", description="openai-chat: the base URL (…/v1); json: the full request URL")
    format: Literal["openai-chat", "json"] = "openai-chat"
    model: str = Field(default="agent", min_length=1, description="openai-chat: the model name to send")
    request_template: Any = Field(default=None, description="json: the request body, placeholders in its strings")
    response_path: str = Field(default="choices[0].message.content", description="json: where the reply text is")
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers; values may use ${ENV_VAR} (never logged)")
    api_key_env: str = Field(default="", description="openai-chat: the environment variable holding the API key (default: none)")
    send_system_prompt: bool = Field(default=True, description="send the staging agent's system prompt (its canary) as the system message")
    canaries_env: list[str] = Field(default_factory=list, description="environment variables holding canaries planted in the agent's own context")
    timeout_s: float = Field(default=60.0, gt=0, le=600)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0, le=30)
    requests_per_s: float = Field(default=0.0, ge=0, description="per worker; 0: unlimited")
    tools: ToolServerConfig = ToolServerConfig()

    def env_names(self) -> set[str]:
        """The environment variables this endpoint reads (header references, the API key, planted canaries)."""
        return env_refs(self.headers) | ({self.api_key_env} if self.api_key_env else set()) | set(self.canaries_env)

    @field_validator("response_path")
    @classmethod
    def _path(cls, value: str) -> str:
        parse_path(value)
        return value

    @model_validator(mode="after")
    def _template(self) -> EndpointConfig:
        if self.format == "json":
            if self.request_template is None:
                raise ValueError("format 'json' needs request_template (the request body, e.g. {message: '{message}'})")
            unknown = placeholders(self.request_template) - set(PLACEHOLDERS)
            if unknown:
                raise ValueError(f"request_template: unknown placeholder(s) {', '.join(sorted('{' + u + '}' for u in unknown))}; known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        check_env_refs(self.headers)
        return self


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """One turn sent to the agent."""

    message: str
    document: str | None
    system: str
    session: str
    agent: str
    requester: str
    tool_server: str = ""
    tool_token: str = ""

    def values(self) -> dict[str, str]:
        return {
            "message": self.message, "document": self.document or "", "system": self.system, "session": self.session,
            "agent": self.agent, "requester": self.requester, "tool_server": self.tool_server, "tool_token": self.tool_token,
        }  # fmt: skip


class _RateLimit:
    """At most ``per_s`` requests a second from this process (a minimum spacing, thread-safe)."""

    def __init__(self, per_s: float) -> None:
        self.interval = 1.0 / per_s if per_s > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class EndpointClient:
    """Sends turns to the deployed agent; returns its reply text or raises :class:`EndpointError`."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.headers = secret_headers(config.headers, "targets.endpoint")
        self._limit = _RateLimit(config.requests_per_s)
        self._steps = parse_path(config.response_path)
        self._openai: Any = None
        self._http: Any = None

    def _tool_headers(self, request: EndpointRequest) -> dict[str, str]:
        tools = self.config.tools
        if not request.tool_server:
            return {}
        return {tools.url_header: request.tool_server, tools.token_header: request.tool_token}

    def send(self, request: EndpointRequest) -> str:
        """The agent's reply to one turn (bounded retries; the error says why it failed, redacted)."""
        self._limit.wait()
        if self.config.format == "openai-chat":
            return self._send_chat(request)
        return self._send_json(request)

    def _send_chat(self, request: EndpointRequest) -> str:
        c = self.config
        if self._openai is None:
            from openai import OpenAI

            key = os.environ.get(c.api_key_env, "") if c.api_key_env else ""
            if c.api_key_env and not key:
                raise EndpointError(f"targets.endpoint.api_key_env: environment variable {c.api_key_env} is not set")
            register_secret(key)
            self._openai = OpenAI(base_url=c.url, api_key=key or "no-key", timeout=c.timeout_s, max_retries=c.max_retries, default_headers=self.headers)
        user = request.message if not request.document else f"{request.message}\n\n--- attached document ---\n{request.document}\n--- end of document ---"
        messages = ([{"role": "system", "content": request.system}] if request.system else []) + [{"role": "user", "content": user}]
        try:
            response = self._openai.chat.completions.create(model=c.model, messages=messages, extra_headers=self._tool_headers(request) or None)
            content = response.choices[0].message.content
        except Exception as exc:
            raise EndpointError(f"{type(exc).__name__}: {redact(str(exc))[:300]}") from None
        return str(content or "")

    def _send_json(self, request: EndpointRequest) -> str:
        import httpx2

        c = self.config
        if self._http is None:
            self._http = httpx2.Client(headers={"Content-Type": "application/json", **self.headers})
        try:
            answer = post_json(self._http, c.url, render(c.request_template, request.values()), self._tool_headers(request), RetryPolicy(c.timeout_s, c.max_retries, c.backoff_s))
            reply = extract(answer, self._steps)
        except RemoteError as exc:
            raise EndpointError(str(exc)) from None
        except KeyError as exc:
            raise EndpointError(f"{exc.args[0]} (response path {c.response_path})") from None
        return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
