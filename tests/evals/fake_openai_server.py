"""A real OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 with scripted misbehaviour, for tests.

Each POST takes the next scripted :class:`Behaviour`: first from the queue of the first ``script_for`` pattern
found in the request's messages, else from the global ``script`` queue, else a normal answer. A normal answer
is :func:`expected_text` of the messages, in the server's ``style`` ("pairwise" -> ``[[A>B]]``/``[[B>A]]``,
"rating" -> ``Rating: [[k]]``). The server counts calls, records the ``Authorization`` headers, bodies and
arrival times it saw, and the peak number of requests in flight at once.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"
STYLES = ("pairwise", "rating")
RATING_MAX = 10
DIGEST_CHARS = 12
DEFAULT_STALL_S = 10.0
SERVE_POLL_S = 0.05
JOIN_TIMEOUT_S = 5.0


def expected_text(messages: list[dict[str, str]], style: str = "pairwise") -> str:
    """The deterministic answer the server gives to ``messages`` in ``style``."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    number = int(digest[:8], 16)
    if style == "pairwise":
        verdict = "[[A>B]]" if number % 2 == 0 else "[[B>A]]"
    elif style == "rating":
        verdict = f"Rating: [[{1 + number % RATING_MAX}]]"
    else:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    return f"Fake judgment of prompt {digest[:DIGEST_CHARS]}.\n{verdict}"


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request.

    ``kind``: "ok", "status" (reply ``status`` with an OpenAI-style error body, plus ``Retry-After`` if set),
    "stall" (say nothing for ``stall_s``), "malformed_json", "missing_choices", "null_content".
    ``delay_s`` delays an "ok" answer (to make requests overlap). ``echo_auth`` puts the Authorization
    header into an error body (to test that clients redact it). "text" answers ``text`` verbatim; "redirect"
    answers 307 to ``text`` (a Location).
    """

    kind: str = "ok"
    status: int = 200
    retry_after: str | None = None
    stall_s: float = DEFAULT_STALL_S
    delay_s: float = 0.0
    echo_auth: bool = False
    text: str = ""


def ok(delay_s: float = 0.0) -> Behaviour:
    """A normal answer, optionally after ``delay_s``."""
    return Behaviour("ok", delay_s=delay_s)


def rate_limited(retry_after: str | None = "1") -> Behaviour:
    """HTTP 429 with ``Retry-After``."""
    return Behaviour("status", status=429, retry_after=retry_after)


def server_error(status: int = 500) -> Behaviour:
    """HTTP 5xx."""
    return Behaviour("status", status=status)


def bad_request(status: int = 400, echo_auth: bool = False) -> Behaviour:
    """A non-retryable HTTP 4xx."""
    return Behaviour("status", status=status, echo_auth=echo_auth)


def stall(stall_s: float = DEFAULT_STALL_S) -> Behaviour:
    """Accept the request and answer nothing for ``stall_s`` (or until the server stops)."""
    return Behaviour("stall", stall_s=stall_s)


def malformed_json() -> Behaviour:
    """HTTP 200 whose body is not JSON."""
    return Behaviour("malformed_json")


def missing_choices() -> Behaviour:
    """HTTP 200 JSON without ``choices``."""
    return Behaviour("missing_choices")


def null_content() -> Behaviour:
    """HTTP 200 chat completion whose message content is null."""
    return Behaviour("null_content")


def answer(text: str) -> Behaviour:
    """A normal completion whose content is ``text`` (e.g. a verdict no parser reads)."""
    return Behaviour("text", text=text)


def redirect(location: str) -> Behaviour:
    """HTTP 307 to ``location`` (a client must not carry the key there)."""
    return Behaviour("redirect", status=307, text=location)


def completion_body(model: str, text: str) -> dict[str, Any]:
    """A minimal OpenAI chat-completion response."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": f"fake_error_{status}", "code": status}}


class FakeOpenAIServer:
    """Threaded loopback server; use as a context manager or ``start()``/``stop()``."""

    def __init__(self, style: str = "pairwise", default_delay_s: float = 0.0) -> None:
        self.style = style
        self.default_delay_s = default_delay_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._global_script: deque[Behaviour] = deque()
        self._pattern_scripts: dict[str, deque[Behaviour]] = {}
        self.calls = 0
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        self.arrival_times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind an ephemeral port on 127.0.0.1 and serve from a background thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": SERVE_POLL_S}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled handlers, stop serving and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the client's ``base_url``."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- scripting -------------------------------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, whichever they are."""
        with self._lock:
            self._global_script.extend(behaviours)

    def script_for(self, pattern: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for requests whose message contents contain ``pattern``."""
        with self._lock:
            self._pattern_scripts.setdefault(pattern, deque()).extend(behaviours)

    # -- used by the handler ---------------------------------------------------------------------------

    def _next_behaviour(self, messages: list[dict[str, str]]) -> Behaviour:
        """Pop the behaviour for this request (pattern queue, then global queue, then a normal answer)."""
        contents = "\n".join(str(m.get("content", "")) for m in messages)
        with self._lock:
            for pattern, queue in self._pattern_scripts.items():
                if pattern in contents and queue:
                    return queue.popleft()
            if self._global_script:
                return self._global_script.popleft()
        return ok(self.default_delay_s)

    def _record_arrival(self, auth: str | None, body: dict[str, Any]) -> None:
        """Count the call and track how many are in flight."""
        with self._lock:
            self.calls += 1
            self.auth_headers.append(auth)
            self.bodies.append(body)
            self.arrival_times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _record_departure(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server is stopping."""
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    """Serves ``POST /v1/chat/completions`` according to the fake's script."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeOpenAIServer:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path != CHAT_PATH:
            self._send_json(404, error_body(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, error_body(400, "request body is not JSON"))
            return
        self.fake._record_arrival(self.headers.get("Authorization"), body)
        try:
            self._serve(body, self.fake._next_behaviour(body.get("messages", [])))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. timed out on a stall)
        finally:
            self.fake._record_departure()

    def _serve(self, body: dict[str, Any], behaviour: Behaviour) -> None:
        """Act out one behaviour."""
        if behaviour.kind == "ok":
            self.fake._wait(behaviour.delay_s)
            text = expected_text(body["messages"], self.fake.style)
            self._send_json(200, completion_body(body.get("model", ""), text))
        elif behaviour.kind == "text":
            self._send_json(200, completion_body(body.get("model", ""), behaviour.text))
        elif behaviour.kind == "redirect":
            self._send_json(behaviour.status, error_body(behaviour.status, "moved"), {"Location": behaviour.text})
        elif behaviour.kind == "status":
            self._send_status(behaviour)
        elif behaviour.kind == "stall":
            self.fake._wait(behaviour.stall_s)
            self.close_connection = True
        elif behaviour.kind == "malformed_json":
            self._send_raw(200, b'{"choices": [ this is not json', "application/json")
        elif behaviour.kind == "missing_choices":
            self._send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion"})
        elif behaviour.kind == "null_content":
            self._send_json(200, completion_body(body.get("model", ""), None))  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown behaviour {behaviour.kind!r}")

    def _send_status(self, behaviour: Behaviour) -> None:
        """An error status with an OpenAI-style body."""
        message = f"scripted HTTP {behaviour.status}"
        if behaviour.echo_auth:
            message += f" (you sent Authorization: {self.headers.get('Authorization')})"
        headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else {}
        self._send_json(behaviour.status, error_body(behaviour.status, message), headers)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
