"""A small OpenAI-compatible chat-completions server for tests: real HTTP on 127.0.0.1, no network.

Behaviour is scripted per ``model`` name with :meth:`OpenAIServer.script`; a model without a script
answers ``"Echo: <last user message>"``. Every request is recorded in :attr:`OpenAIServer.requests`.

Usage::

    with OpenAIServer() as server:
        server.script("slow-model", text="hello world", delay_s=0.2)
        client = OpenAI(base_url=server.base_url, api_key="k")
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    text: str | None = None            # None: echo the last user message
    chunk_size: int = 4                # characters per streamed chunk
    delay_s: float = 0.0               # between chunks (streaming) / per chunk of the total (non-streaming)
    first_token_delay_s: float = 0.0   # before the first chunk (streaming) or the whole answer
    status: int = 200                  # a non-200 status answers with an OpenAI-style error body
    malformed: bool = False            # answer with broken JSON (or a broken SSE event when streaming)
    fail_times: int = 0                # answer HTTP 500 this many times, then behave as scripted
    usage: bool = True                 # report token usage (when streaming: only if include_usage was asked)
    retry_after_ms: int | None = None  # sent with failures as retry-after-ms, when set
    respond: Callable[[list[dict[str, Any]]], str] | None = None  # computes the answer from the messages
    failures_left: int = field(default=0, repr=False)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]   # lower-cased names
    body: Any                 # the decoded JSON body (None for GET)
    received: float = field(default_factory=time.monotonic)  # when it arrived: retry delays are measured on it


def echo_text(messages: list[dict[str, Any]]) -> str:
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    return f"Echo: {last}"


def count_tokens(text: str) -> int:
    """Whitespace words: a stand-in tokenizer, enough for tests to check that usage is passed through."""
    return len(text.split())


class OpenAIServer:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and every test shuts a server down.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="openai-test-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, model: str, **behaviour: Any) -> Script:
        script = Script(**behaviour)
        script.failures_left = script.fail_times
        with self._lock:
            self._scripts[model] = script
        return script

    def chat_requests(self, model: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")
                    and (model is None or (isinstance(r.body, dict) and r.body.get("model") == model))]

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()     # wakes handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- used by the handler -------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_script(self, model: str) -> tuple[Script, bool]:
        """The model's script and whether this request is one of its scripted failures."""
        with self._lock:
            script = self._scripts.get(model) or Script()
            failing = script.failures_left > 0
            if failing:
                script.failures_left -= 1
            return script, failing

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False when it is."""
        return not (seconds > 0 and self._stopping.wait(seconds))


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
            pass

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def do_GET(self) -> None:
            server._record(RecordedRequest("GET", self.path, self._headers(), None))
            if self.path.rstrip("/") == "/v1/models":
                with server._lock:
                    names = sorted(server._scripts)
                self._json(200, {"object": "list", "data": [
                    {"id": n, "object": "model", "created": 0, "owned_by": "test"} for n in names]})
            else:
                self._json(404, _error_body("not found", "not_found_error"))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError:
                body = None
            server._record(RecordedRequest("POST", self.path, self._headers(), body))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, _error_body("not found", "not_found_error"))
                return
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                self._json(400, _error_body("messages is required", "invalid_request_error"))
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                self._chat(body)

        def _chat(self, body: dict[str, Any]) -> None:
            model = str(body.get("model", ""))
            script, failing = server._take_script(model)
            extra = {"retry-after-ms": str(script.retry_after_ms)} if script.retry_after_ms is not None else {}
            if failing:
                self._json(500, _error_body("scripted failure", "server_error"), extra)
                return
            if script.status != 200:
                self._json(script.status, _error_body(f"scripted status {script.status}", "server_error"), extra)
                return
            if script.respond is not None:
                text = script.respond(body["messages"])
            else:
                text = script.text if script.text is not None else echo_text(body["messages"])
            chunks = [text[i:i + script.chunk_size] for i in range(0, len(text), script.chunk_size)] or [""]
            usage = {"prompt_tokens": sum(count_tokens(str(m.get("content", ""))) for m in body["messages"]),
                     "completion_tokens": count_tokens(text)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream(model, script, chunks, usage if script.usage and include_usage else None)
            else:
                self._whole(model, script, text, len(chunks), usage if script.usage else None)

        def _whole(self, model: str, script: Script, text: str, n_chunks: int, usage: dict | None) -> None:
            if not server._sleep(script.first_token_delay_s + script.delay_s * max(0, n_chunks - 1)):
                return
            if script.malformed:
                self._send(200, b'{"id": "chatcmpl-x", "choices": [', "application/json")
                return
            answer = {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                      "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": text}}]}
            if usage is not None:
                answer["usage"] = usage
            self._json(200, answer)

        def _stream(self, model: str, script: Script, chunks: list[str], usage: dict | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")   # the end of the body is the end of the connection
            self.end_headers()
            self.close_connection = True
            base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model}

            def event(data: str) -> None:
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()

            event(json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                   "finish_reason": None}]}))
            if not server._sleep(script.first_token_delay_s):
                return
            for i, piece in enumerate(chunks):
                if i and not server._sleep(script.delay_s):
                    return
                if script.malformed and i == len(chunks) // 2:
                    event('{"choices": [{"delta": {"content": "broken')
                    return
                event(json.dumps({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                       "finish_reason": None}]}))
            event(json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            if usage is not None:
                event(json.dumps({**base, "choices": [], "usage": usage}))
            event("[DONE]")

        def _json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", extra)

        def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


def _error_body(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
