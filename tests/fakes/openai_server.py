"""A small local HTTP server that speaks the OpenAI Chat Completions wire format.

Tests drive the real ``openai`` SDK against it. Behaviour comes from a
``brain(request_json) -> Reply | dict`` function, so each test scripts the
"model": tool calls, plain answers, errors (429 with retry-after, 500),
malformed bodies, slow responses or a connection reset with no answer.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str/bytes -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False  # drop the connection with a TCP RST instead of answering


def completion(content: str | None = None, tool_calls: list[tuple[str, str]] | None = None, model: str = "fake", usage: tuple[int, int] = (50, 20)) -> dict[str, Any]:
    """A chat.completion body; ``tool_calls`` are (name, arguments-json) pairs."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}} for i, (name, arguments) in enumerate(tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


class FakeOpenAI:
    """``with FakeOpenAI(brain) as server: OpenAI(base_url=server.base_url, ...)``."""

    def __init__(self, brain: Callable[[dict[str, Any]], Reply | dict[str, Any]]) -> None:
        self.brain = brain
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def finish(self) -> None:
                try:
                    super().finish()
                except OSError:
                    pass  # the connection was reset on purpose

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    payload = {"_raw": raw.decode("utf-8", "replace")}
                with outer._lock:
                    outer.requests.append(payload)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.brain(payload)
                if not isinstance(reply, Reply):
                    reply = Reply(200, reply)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()  # linger 0: the peer sees ECONNRESET
                    self.close_connection = True
                    return
                body = reply.body
                data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to report

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def sniper_env(anthropic: FakeOpenAI, openai: FakeOpenAI, anthropic_key: str, openai_key: str, ledger: Path) -> dict[str, str]:
    """The environment an `immune` subprocess needs to send its sniper calls to two local fake providers."""
    return {
        **os.environ,
        "ANTHROPIC_API_KEY": anthropic_key,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{anthropic.port}",
        "OPENAI_API_KEY": openai_key,
        "OPENAI_BASE_URL": openai.base_url,
        "IMMUNE_LEDGER_PATH": str(ledger),
    }


def last_user_text(payload: dict[str, Any]) -> str:
    for message in reversed(payload.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content"))
    return ""


def tool_messages(payload: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in payload.get("messages", []) if m.get("role") == "tool"]


def anthropic_message(text: str, usage: tuple[int, int] = (40, 25), model: str = "claude-fake") -> dict[str, Any]:
    """A Messages API response body."""
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def anthropic_error(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
