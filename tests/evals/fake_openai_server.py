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
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from evals.judges.oracle_server import CHAT_PATH, ChatServer, completion_body, error_body  # noqa: F401 - re-exported

STYLES = ("pairwise", "rating")
RATING_MAX = 10
DIGEST_CHARS = 12
DEFAULT_STALL_S = 10.0


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


def expected_top_logprobs(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The first-token alternatives the server gives when asked for ``logprobs`` (AlpacaEval's ``m``/``M``):
    P(m) is a deterministic number in (0, 1) from the prompt; a third token carries the rest, as real APIs do."""
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
    p_m = 0.05 + 0.9 * int(digest[8:16], 16) / 16**8
    top = [{"token": "m", "logprob": math.log(0.98 * p_m)}, {"token": "M", "logprob": math.log(0.98 * (1 - p_m))},
           {"token": "Model", "logprob": math.log(0.02)}]
    return sorted(top, key=lambda t: -t["logprob"])


class FakeOpenAIServer(ChatServer):
    """The loopback server of evals/judges/oracle_server.py acting out a script; ``start()``/``stop()`` or a context
    manager."""

    def __init__(self, style: str = "pairwise", default_delay_s: float = 0.0) -> None:
        super().__init__()
        self.retired_models: set[str] = set()   # models answered with OpenAI's 404 model_not_found
        self.style = style
        self.default_delay_s = default_delay_s
        self._global_script: deque[Behaviour] = deque()
        self._pattern_scripts: dict[str, deque[Behaviour]] = {}

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, whichever they are."""
        with self._lock:
            self._global_script.extend(behaviours)

    def script_for(self, pattern: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for requests whose message contents contain ``pattern``."""
        with self._lock:
            self._pattern_scripts.setdefault(pattern, deque()).extend(behaviours)

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

    def handle_chat(self, handler, body: dict[str, Any]) -> None:
        """Act out the next behaviour."""
        behaviour = self._next_behaviour(body.get("messages", []))
        if body.get("model") in self.retired_models:
            handler.send_json(404, {"error": {
                "message": f"The model `{body['model']}` does not exist or you do not have access to it.",
                "type": "invalid_request_error", "param": None, "code": "model_not_found"}})
            return
        if behaviour.kind == "ok":
            self.wait(behaviour.delay_s)
            if body.get("logprobs"):
                top = expected_top_logprobs(body["messages"])[: int(body.get("top_logprobs") or 1)]
                first = [{"token": top[0]["token"], "logprob": top[0]["logprob"], "top_logprobs": top}]
                handler.send_json(200, completion_body(body.get("model", ""), top[0]["token"], first))
                return
            handler.send_json(200, completion_body(body.get("model", ""), expected_text(body["messages"], self.style)))
        elif behaviour.kind == "text":  # asked for logprobs: the text's first word is the one top token
            first = ([{"token": behaviour.text.split()[0], "logprob": 0.0,
                       "top_logprobs": [{"token": behaviour.text.split()[0], "logprob": 0.0}]}]
                     if body.get("logprobs") and behaviour.text.split() else None)
            handler.send_json(200, completion_body(body.get("model", ""), behaviour.text, first))
        elif behaviour.kind == "redirect":
            handler.send_json(behaviour.status, error_body(behaviour.status, "moved"), {"Location": behaviour.text})
        elif behaviour.kind == "status":
            message = f"scripted HTTP {behaviour.status}"
            if behaviour.echo_auth:
                message += f" (you sent Authorization: {handler.headers.get('Authorization')})"
            headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else {}
            handler.send_json(behaviour.status, error_body(behaviour.status, message), headers)
        elif behaviour.kind == "stall":
            self.wait(behaviour.stall_s)
            handler.close_connection = True
        elif behaviour.kind == "malformed_json":
            handler.send_raw(200, b'{"choices": [ this is not json', "application/json")
        elif behaviour.kind == "missing_choices":
            handler.send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion"})
        elif behaviour.kind == "null_content":
            handler.send_json(200, completion_body(body.get("model", ""), None))
        else:
            raise ValueError(f"unknown behaviour {behaviour.kind!r}")
