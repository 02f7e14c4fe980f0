"""Keep credentials out of everything we write: logs, error strings, results.

Two nets: the exact values of the credentials this process holds (the SDKs'
environment variables and any registered at run time), and the shapes of
provider keys and bearer tokens, so a key we never held (a proxy echoing
another tenant's key in an error body) is caught too. Patterns are plain
character classes with bounded repetition: linear time on any input.
"""

from __future__ import annotations

import logging
import os
import re
import threading

REDACTED = "[REDACTED]"

#: Environment variables whose values are credentials.
SECRET_ENV_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AZURE_OPENAI_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "RAY_AUTH_TOKEN",
    "DATABRICKS_TOKEN",
)
MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words

_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?P<keep>sk-ant-(?:api\d\d-|admin\d\d-)?|sk-(?:proj-|svcacct-|admin-)?)[A-Za-z0-9_\-]{16,400}"
    r"|\b(?P<bearer>[Bb]earer\s{1,8})[A-Za-z0-9._~+/=\-]{12,4000}"
    r"|\b(?P<header>(?:x-api-key|api[_-]?key|authorization)[\"']?\s{0,4}[:=]\s{0,4}[\"']?)[A-Za-z0-9._~+/=\-]{12,4000}"
    r"|(?P<userinfo>://[^/\s:@]{1,256}:)[^/\s@]{1,256}(?=@)",
    re.IGNORECASE,
)

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Also redact ``value`` (a key passed in code rather than through the environment)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def known_secrets() -> list[str]:
    """Credential values this process holds, longest first (so a key containing another is replaced whole)."""
    values = {os.environ.get(name, "") for name in SECRET_ENV_VARS}
    with _lock:
        values |= _registered
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact_known(text: str) -> str:
    """Replace the exact credential values this process holds (safe on attack text: nothing else changes)."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(text: str) -> str:
    """Replace known credentials and anything shaped like a provider key or bearer token."""
    text = redact_known(text)

    def keep_prefix(match: re.Match[str]) -> str:
        prefix = match.group("keep") or match.group("bearer") or match.group("header") or match.group("userinfo") or ""
        return prefix + REDACTED

    return _KEY_SHAPES.sub(keep_prefix, text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and any traceback of every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # the handler prints exc_text, not a fresh (unredacted) traceback
        return True


def install_log_redaction() -> None:
    """Add a :class:`RedactingFilter` (once) to every handler of the root logger and of every logger that has its own (mlflow, ray …)."""
    loggers = [logging.getLogger()] + [obj for obj in list(logging.root.manager.loggerDict.values()) if isinstance(obj, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
