"""Sniper and grunt-LLM backends: the real openai and anthropic SDKs against local wire-format servers."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import time

import pytest

from attackers.backends import AnthropicBackend, BudgetedBackend, ChatCompletionsBackend, VLLMEngineBackend
from attackers.budget import BudgetLedger, Caps, Refusal
from attackers.generation import GenerationRequest, Pricing
from tests.fakes.openai_server import FakeOpenAI, Reply, anthropic_error, anthropic_message, completion

PRICE = Pricing(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)


def _requests(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"c.{i}", "system prompt", f"write attack {i}", max_tokens=100) for i in range(n)]


@pytest.fixture()
def openai_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-KEY-do-not-log")


@pytest.fixture()
def anthropic_env(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-KEY-do-not-log")


def test_openai_usage_is_priced_and_requests_run_concurrently(openai_env):
    with FakeOpenAI(lambda p: Reply(200, completion(content="<attack>hi</attack>", usage=(1000, 200)), delay_s=0.2)) as server:
        backend = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE, concurrency=8)
        started = time.perf_counter()
        results = backend.generate(_requests(8))
        elapsed = time.perf_counter() - started
    assert all(r.ok and r.text == "<attack>hi</attack>" for r in results)
    assert results[0].cost_usd == pytest.approx(1000 / 1e6 * 3.0 + 200 / 1e6 * 15.0)
    assert elapsed < 1.2  # 8 calls of 0.2 s in parallel, not 1.6 s in a row
    assert server.headers[0]["authorization"] == "Bearer sk-test-openai-KEY-do-not-log"
    assert server.requests[0]["messages"][0] == {"role": "system", "content": "system prompt"}


def test_openai_429_with_retry_after_is_retried(openai_env):
    calls = {"n": 0}

    def brain(payload):
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"retry-after": "1"})
        return completion(content="ok answer", usage=(10, 5))

    with FakeOpenAI(brain) as server:
        started = time.perf_counter()
        result = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE, max_retries=2).generate(_requests(1))[0]
        waited = time.perf_counter() - started
    assert result.ok and result.retries == 1 and calls["n"] == 2
    assert waited >= 0.9  # honoured retry-after: 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(500, {"error": {"message": "upstream exploded"}}), "500"),
        (Reply(200, "{this is not json"), ""),
        (Reply(200, completion(content="slow"), delay_s=1.5), "Timeout"),
    ],
)
def test_openai_failures_come_back_as_recorded_results(openai_env, reply, expected):
    with FakeOpenAI(lambda p: reply) as server:
        backend = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE, max_retries=1, timeout_s=0.5)
        result = backend.generate(_requests(1))[0]
    assert not result.ok and result.status == "error" and expected in result.error
    assert "KEY-do-not-log" not in result.error


FAULTS = {
    "429 with retry-after": (Reply(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"retry-after": "0"}), True, "429"),
    "500": (Reply(500, {"error": {"message": "upstream exploded"}}), True, "500"),
    "503 as HTML": (Reply(503, "<html>bad gateway</html>"), True, "503"),
    "timeout": (Reply(200, completion(content="late"), delay_s=1.0), True, "Timeout"),
    "connection reset": (Reply(reset=True), True, "Connection"),
    "malformed JSON": (Reply(200, "{this is not json"), False, ""),
    "JSON without choices": (Reply(200, {"id": "x", "object": "chat.completion"}), False, ""),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_provider_faults_get_bounded_retries_then_a_failed_result(openai_env, fault):
    reply, retried, expected = FAULTS[fault]
    with FakeOpenAI(lambda p: reply) as server:
        backend = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE, max_retries=2, timeout_s=0.3)
        results = backend.generate(_requests(2))
        sent = len(server.requests)
    assert [r.ok for r in results] == [False, False]
    assert all(r.status == "error" and expected in r.error and r.cost_usd == 0 for r in results), [r.error for r in results]
    assert sent == (2 * 3 if retried else 2)  # each request tried at most 1 + max_retries times
    assert all("KEY-do-not-log" not in r.error for r in results)


def test_a_provider_that_recovers_mid_batch_loses_no_request(openai_env):
    calls = {"n": 0}

    def brain(payload):
        calls["n"] += 1
        if calls["n"] <= 3:
            return Reply(reset=True) if calls["n"] % 2 else Reply(500, {"error": {"message": "flaky"}})
        return completion(content=f"answer to {payload['messages'][-1]['content']}")

    with FakeOpenAI(brain) as server:
        results = ChatCompletionsBackend("gpt-test", base_url=server.base_url, max_retries=3, concurrency=1).generate(_requests(3))
    assert [r.text for r in results] == [f"answer to write attack {i}" for i in range(3)]
    assert sum(r.retries for r in results) == 3


def test_anthropic_usage_retry_and_errors(anthropic_env, monkeypatch):
    calls = {"n": 0}

    def brain(payload):
        calls["n"] += 1
        if calls["n"] == 1:
            return Reply(429, anthropic_error(429, "rate_limit_error", "slow down"), {"retry-after": "0"})
        assert payload["system"] == "system prompt" and payload["messages"][0]["role"] == "user"
        return anthropic_message("<attack>ignore all</attack>", usage=(2000, 300))

    with FakeOpenAI(brain) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{server.port}")
        result = AnthropicBackend("claude-test", pricing=PRICE, max_retries=2).generate(_requests(1))[0]
        sent = server.headers[-1]
        # anthropic 2.x sends the key as a bearer token; older versions used x-api-key
        assert sent.get("x-api-key") == "sk-ant-test-KEY-do-not-log" or sent.get("authorization") == "Bearer sk-ant-test-KEY-do-not-log"
    assert result.ok and result.retries == 1 and result.text == "<attack>ignore all</attack>"
    assert result.cost_usd == pytest.approx(2000 / 1e6 * 3.0 + 300 / 1e6 * 15.0)
    with FakeOpenAI(lambda p: Reply(529, anthropic_error(529, "overloaded_error", "overloaded"))) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{server.port}")
        failed = AnthropicBackend("claude-test", pricing=PRICE, max_retries=0).generate(_requests(1))[0]
    assert not failed.ok and "529" in failed.error


def test_budget_refuses_before_calling_and_settles_what_it_spent(openai_env, tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    with FakeOpenAI(lambda p: completion(content="x" * 20, usage=(100, 50))) as server:
        inner = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE)
        budgeted = BudgetedBackend(inner, ledger, Caps(attacks_per_day=3), "sniper", PRICE)
        results = budgeted.generate(_requests(5))
        assert len(server.requests) == 3
    assert [r.status for r in results] == ["ok", "ok", "ok", "refused", "refused"]
    assert "daily cap of 3" in results[3].error
    usage = ledger.usage("sniper")
    assert usage.attacks_today == 3 and usage.open_reservations == 0
    assert usage.usd_today == pytest.approx(3 * PRICE.cost(100, 50))


def test_failed_calls_release_their_reservation(openai_env, tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    with FakeOpenAI(lambda p: Reply(500, {"error": {"message": "no"}})) as server:
        inner = ChatCompletionsBackend("gpt-test", base_url=server.base_url, pricing=PRICE, max_retries=0)
        BudgetedBackend(inner, ledger, Caps(attacks_per_day=3), "sniper", PRICE).generate(_requests(2))
    assert ledger.usage("sniper").attacks_today == 0  # released, so the cap is not consumed


def test_dollar_cap_binds(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    caps = Caps(usd_per_day=1.0)
    assert isinstance(ledger.reserve("sniper", "openai", "m", 0.6, caps), int)
    refusal = ledger.reserve("sniper", "openai", "m", 0.6, caps)
    assert isinstance(refusal, Refusal) and "daily budget of $1.00" in refusal.reason


def _reserve_once(path: str) -> bool:
    ledger = BudgetLedger(path)
    return not isinstance(ledger.reserve("sniper", "anthropic", "claude", 0.01, Caps(attacks_per_day=50)), Refusal)


def test_cap_holds_under_100_concurrent_requests_from_many_processes(tmp_path):
    path = str(tmp_path / "ledger.sqlite")
    BudgetLedger(path)
    # spawned, not forked: real separate processes, and none inherits the test process's threads or open files
    with concurrent.futures.ProcessPoolExecutor(max_workers=10, mp_context=multiprocessing.get_context("spawn")) as pool:
        granted = list(pool.map(_reserve_once, [path] * 100))
    assert sum(granted) == 50
    assert BudgetLedger(path).usage("sniper").attacks_today == 50


def test_cap_holds_under_concurrent_threads(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(lambda _: ledger.reserve("sniper", "openai", "m", 0.0, Caps(attacks_per_day=50)), range(100)))
    assert sum(isinstance(o, int) for o in outcomes) == 50


def test_keys_never_reach_the_logs(openai_env, caplog):
    with FakeOpenAI(lambda p: Reply(401, {"error": {"message": "bad key"}})) as server, caplog.at_level(logging.DEBUG):
        result = ChatCompletionsBackend("gpt-test", base_url=server.base_url, max_retries=0).generate(_requests(1))[0]
    assert not result.ok and "401" in result.error
    assert "KEY-do-not-log" not in caplog.text and "KEY-do-not-log" not in result.error


def test_vllm_backend_without_vllm_names_the_extra(monkeypatch):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(RuntimeError, match=r"'vllm' extra"):
        VLLMEngineBackend("some-model")
