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
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kosmoi.redact import redact, register_secret
from kosmoi.settings import Settings

log = logging.getLogger(__name__)

PLACEHOLDERS = ("message", "document", "system", "session", "agent", "requester", "tool_server", "tool_token")
MAX_RESPONSE_BYTES = 1 << 20
MAX_RETRY_AFTER_S = 30.0
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,40})\}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,100})\}")
_PATH_STEP = re.compile(r"([^.\[\]]{1,200})|\[(\d{1,6})\]")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """A request to the endpoint failed after its retries (the message is redacted)."""


def parse_path(path: str) -> tuple[str | int, ...]:
    """``$.a.b[0].c`` or ``a.b[0].c`` as its steps; a malformed path is a ValueError naming it."""
    body = path[1:] if path.startswith("$") else path
    body = body[1:] if body.startswith(".") else body
    if body.endswith("."):
        raise ValueError(f"response path {path!r} ends with '.'")
    steps: list[str | int] = []
    position = 0
    while position < len(body):
        if body[position] == "." and steps:
            position += 1
        match = _PATH_STEP.match(body, position)
        if match is None:
            raise ValueError(f"response path {path!r}: cannot read it at character {position + 1} (use keys and [index], e.g. choices[0].message.content)")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not steps and path != "$":
        raise ValueError(f"response path {path!r} is empty")
    return tuple(steps)


def extract(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` in a parsed JSON document; a missing step is a KeyError naming where."""
    value = document
    for depth, step in enumerate(steps):
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps[: depth + 1]).lstrip(".")
            raise KeyError(f"the response has no {where}")
    return value


def render(template: Any, values: Mapping[str, str]) -> Any:
    """The template with each ``{placeholder}`` in its string leaves replaced (no format-string evaluation)."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, dict):
        return {key: render(item, values) for key, item in template.items()}
    return template


def _placeholders(template: Any) -> set[str]:
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, list):
        return set().union(*(_placeholders(item) for item in template)) if template else set()
    if isinstance(template, dict):
        return set().union(*(_placeholders(item) for item in template.values())) if template else set()
    return set()


def expand_env(value: str, where: str) -> str:
    """``value`` with each ``${NAME}`` replaced from the environment; an unset variable is a ValueError naming it."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(lookup, value)


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
            unknown = _placeholders(self.request_template) - set(PLACEHOLDERS)
            if unknown:
                raise ValueError(f"request_template: unknown placeholder(s) {', '.join(sorted('{' + u + '}' for u in unknown))}; known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        for name, value in self.headers.items():
            if "$" in value.replace("${", "") or value.count("${") != len(_ENV_REF.findall(value)):
                raise ValueError(f"headers.{name}: write environment references as ${{NAME}}")
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
        self.headers = {name: expand_env(value, f"targets.endpoint.headers.{name}") for name, value in config.headers.items()}
        for value in self.headers.values():
            register_secret(value)
            for part in value.split():
                register_secret(part)
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
            self._http = httpx2.Client(timeout=c.timeout_s, headers={"Content-Type": "application/json", **self.headers})
        body = render(c.request_template, request.values())
        last = ""
        for attempt in range(c.max_retries + 1):
            if attempt:
                time.sleep(min(MAX_RETRY_AFTER_S, c.backoff_s * 2 ** (attempt - 1)))
            try:
                with self._http.stream("POST", c.url, json=body, headers=self._tool_headers(request)) as response:
                    data = b""
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > MAX_RESPONSE_BYTES:
                            raise EndpointError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
                    status = response.status_code
                    retry_after = response.headers.get("retry-after", "")
            except httpx2.TimeoutException:
                last = f"timed out after {c.timeout_s:g} s"
                continue
            except httpx2.TransportError as exc:
                last = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
                continue
            if status in RETRY_STATUS:
                last = f"HTTP {status}"
                if retry_after.replace(".", "", 1).isdigit():
                    time.sleep(min(MAX_RETRY_AFTER_S, float(retry_after)))
                continue
            if status >= 400:
                raise EndpointError(f"HTTP {status}: {redact(data[:200].decode('utf-8', 'replace'))}")
            try:
                reply = extract(json.loads(data), self._steps)
            except (ValueError, KeyError) as exc:
                reason = exc.args[0] if isinstance(exc, KeyError) else "the response is not JSON"
                raise EndpointError(f"{reason} (response path {c.response_path})") from None
            return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        raise EndpointError(f"{last} (after {c.max_retries + 1} attempts)")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
