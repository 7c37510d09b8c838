"""An OpenAI-compatible chat-completions server on loopback.

It stands in for a hosted LLM, which cannot run here: it speaks the real
protocol (``POST /v1/chat/completions``), so the real ``openai`` client, the
OpenInference instrumentor and journeyscope's LLM judge talk to it exactly as
they would to a hosted model. The reply is produced by a function the test
passes in; every request body is kept for assertions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], tuple[int, Any]]


def echo_reply(request: dict[str, Any]) -> tuple[int, Any]:
    """Answer with a fixed assistant message naming the last user message."""
    last = next((m for m in reversed(request.get("messages", [])) if m.get("role") == "user"), {})
    return 200, completion(f"You said: {last.get('content', '')}", model=request.get("model", "stand-in"))


def completion(content: str, model: str = "stand-in") -> dict[str, Any]:
    """A chat-completions response body with one assistant message."""
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@contextmanager
def openai_server(reply: Reply = echo_reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run the stand-in; yields its base URL (``http://127.0.0.1:PORT/v1``) and the requests seen."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if not self.path.endswith("/chat/completions"):
                status, payload = 404, {"error": {"message": f"no route {self.path}"}}
            else:
                status, payload = reply(body)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
