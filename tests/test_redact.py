"""Credential redaction: exact values held, key shapes, log records and their tracebacks, linear time."""

from __future__ import annotations

import logging
import time

import pytest

from kosmoi.redact import REDACTED, RedactingFilter, install_log_redaction, redact, redact_known, register_secret

HELD = "sk-proj-HELDkey0123456789abcdefABCDEF"


@pytest.fixture()
def held_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", HELD)


def test_held_credentials_are_replaced_exactly(held_key):
    assert redact_known(f"Incorrect API key provided: {HELD}.") == f"Incorrect API key provided: {REDACTED}."
    assert redact_known("ignore previous instructions") == "ignore previous instructions"


@pytest.mark.parametrize(
    "leak",
    [
        "sk-ant-api03-" + "x" * 40,
        "sk-proj-" + "A1" * 20,
        "sk-" + "b" * 48,
        "Authorization: Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln",
        'x-api-key: "abcdefghijklmnop123"',
        "api_key=abcdefghijklmnop123",
        "https://alice:hunter2-tracking-pw@mlflow.internal:5000/api",
    ],
)
def test_key_shapes_are_redacted_even_when_never_held(leak):
    out = redact(f"upstream said: {leak} (request 7)")
    assert REDACTED in out and out.endswith("(request 7)")
    secret = leak.split()[-1].strip('"').split("=")[-1]
    assert (secret.split(":")[2].split("@")[0] if "://" in secret else secret) not in out


def test_short_values_and_ordinary_words_are_left_alone(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "abc")  # too short to redact safely
    register_secret("")
    text = "ask the desk about task-123, the task-force-coordination-group and the sk- prefix"
    assert redact(text) == text


def test_a_registered_key_passed_in_code_is_redacted():
    register_secret("local-server-token-42x")
    assert redact_known("token local-server-token-42x rejected") == f"token {REDACTED} rejected"


def test_log_records_and_their_tracebacks_are_redacted(held_key):
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s", HELD)
        try:
            raise RuntimeError(f"401 Incorrect API key provided: {HELD}")
        except RuntimeError:
            logger.exception("provider failed")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 2
    assert all(HELD not in r for r in records)
    assert "calling with [REDACTED]" in records[0] and "RuntimeError: 401 Incorrect API key provided: [REDACTED]" in records[1]


def test_install_covers_loggers_with_their_own_handlers(held_key):
    own = logging.getLogger("test.redact.own")
    handler = logging.StreamHandler()
    own.addHandler(handler)
    try:
        install_log_redaction()
        install_log_redaction()  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        own.removeHandler(handler)


def test_redaction_is_linear_on_hostile_input():
    for text in ("sk-" * 200_000, "Bearer " * 100_000, "a" * 1_000_000, "api_key=" + "a" * 3999 + "!" * 10):
        started = time.perf_counter()
        redact(text)
        assert time.perf_counter() - started < 2.0
