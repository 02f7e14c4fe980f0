"""JSON over HTTP for the parts that talk to other people's services: request templates, response paths, bounded retries.

Used by the endpoint victim (:mod:`targets.endpoint`) and the generic HTTP
guard stage (:mod:`targets.external_stages`). Templates are JSON values whose
string leaves hold ``{placeholder}`` names, substituted in one pass (no
format-string evaluation, so text that itself contains ``{name}`` stays as
it is). Paths are ``$.a.b[0].c`` or ``a.b[0].c``. Header values may reference
environment variables as ``${NAME}``; their values are registered with
:mod:`kosmoi.redact`. :func:`post_json` retries connection errors, timeouts,
429 (``Retry-After`` honoured up to a cap) and 5xx with exponential backoff,
caps the response size, and raises :class:`RemoteError` with a redacted
reason when it gives up.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kosmoi.redact import redact, register_secret

MAX_RESPONSE_BYTES = 1 << 20
MAX_RETRY_AFTER_S = 30.0
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,40})\}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,100})\}")
_PATH_STEP = re.compile(r"([^.\[\]]{1,200})|\[(\d{1,6})\]")


class RemoteError(RuntimeError):
    """A request failed after its retries, or its answer could not be read (the message is redacted)."""


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


def strings(value: Any) -> Iterator[str]:
    """Every string leaf of a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def placeholders(template: Any) -> set[str]:
    """The ``{placeholder}`` names a template's strings use."""
    return {name for text in strings(template) for name in _PLACEHOLDER.findall(text)}


def expand_env(value: str, where: str) -> str:
    """``value`` with each ``${NAME}`` replaced from the environment; an unset variable is a ValueError naming it."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(lookup, value)


def env_refs(value: Any) -> set[str]:
    """Names of the environment variables a JSON value's strings reference as ``${NAME}``."""
    return {name for text in strings(value) for name in _ENV_REF.findall(text)}


def check_env_refs(headers: Mapping[str, str]) -> None:
    """Every ``$`` in a header value must start a ``${NAME}`` reference (a ValueError naming the header)."""
    for name, value in headers.items():
        if "$" in value.replace("${", "") or value.count("${") != len(_ENV_REF.findall(value)):
            raise ValueError(f"headers.{name}: write environment references as ${{NAME}}")


def secret_headers(headers: Mapping[str, str], where: str) -> dict[str, str]:
    """Headers with their ``${NAME}`` references expanded; every value (and each of its words) is redacted from logs from now on."""
    expanded = {name: expand_env(value, f"{where}.headers.{name}") for name, value in headers.items()}
    for value in expanded.values():
        register_secret(value)
        for part in value.split():
            register_secret(part)
    return expanded


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait for one answer, and how often to try again."""

    timeout_s: float = 30.0
    max_retries: int = 2
    backoff_s: float = 0.5


def post_json(http: Any, url: str, body: Any, headers: Mapping[str, str], policy: RetryPolicy) -> Any:
    """POST ``body`` as JSON with ``http`` (an ``httpx2.Client``); the parsed JSON answer, or :class:`RemoteError`."""
    import httpx2

    last = ""
    for attempt in range(policy.max_retries + 1):
        if attempt:
            time.sleep(min(MAX_RETRY_AFTER_S, policy.backoff_s * 2 ** (attempt - 1)))
        try:
            with http.stream("POST", url, json=body, headers=dict(headers), timeout=policy.timeout_s) as response:
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_RESPONSE_BYTES:
                        raise RemoteError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
                status = response.status_code
                retry_after = response.headers.get("retry-after", "")
        except httpx2.TimeoutException:
            last = f"timed out after {policy.timeout_s:g} s"
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
            raise RemoteError(f"HTTP {status}: {redact(data[:200].decode('utf-8', 'replace'))}")
        try:
            return json.loads(data)
        except ValueError:
            raise RemoteError("the response is not JSON") from None
    raise RemoteError(f"{last} (after {policy.max_retries + 1} attempts)")
