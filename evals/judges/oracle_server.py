"""The micro world's oracle behind a real OpenAI-compatible ``/v1/chat/completions`` server on loopback: the
rehearsal's stand-in for the GPT-4 API, reached by the real HTTP judge (evals/judges/http.py) of a real config.

    python -m evals.judges.oracle_server --port 8765 --items MIRROR/gold_items.jsonl \\
        --judge-json '{"temperature": 0.2, "verbosity_bias": 1.0, "length_scale": 50, "seed": 0,
                       "gold_reward": {"length_penalty": 0.2, "length_scale": 50}}'

Each request is recognised by the upstream prompt it carries (evals/templates): AlpacaEval's ``"instruction":
\"\"\"...\"\"\"`` pair with outputs ``m``/``M``, Arena-Hard's ``<|User Prompt|>`` ... ``Assistant A/B's Answer`` games
(also when a later "continue" turn follows), MT-Bench's single grading of turn 1 (``[Question]``) or turn 2 (the
``### User:`` conversation). The gold item is found by the instruction text (``--items``, the mirror's gold items),
and the oracle (evals/judges/oracle.py) answers in that benchmark's format. With ``logprobs``/``top_logprobs`` asked,
the first token's ``top_logprobs`` carry the oracle's probabilities of ``m`` and ``M`` as OpenAI returns them:
``choices[0].logprobs.content[0].top_logprobs = [{token, logprob, bytes}, ...]``. A request it cannot recognise
gets HTTP 400 naming why. ``GET /stats`` returns the calls, counted per benchmark, and the number of distinct request
bodies (identical prompts of different models are distinct judgments; a rerun answered from the judge cache adds no
call).

:class:`ChatServer` is the reusable part (threaded loopback server, call counting, OpenAI bodies); the tests' fake
server with scripted misbehaviour (tests/evals/fake_openai_server.py) is one too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHAT_PATH = "/v1/chat/completions"
STATS_PATH = "/stats"
SERVE_POLL_S = 0.05
JOIN_TIMEOUT_S = 5.0
HOST = "127.0.0.1"


def completion_body(model: str, text: str | None, logprobs: list[dict] | None = None) -> dict[str, Any]:
    """An OpenAI chat-completion response (``logprobs``: the per-token entries of ``choices[0].logprobs.content``)."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [choice], "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": f"error_{status}", "code": status}}


class ChatServer:
    """A threaded OpenAI-compatible server on 127.0.0.1 that counts calls; subclasses answer in ``complete`` (or take
    over the whole exchange in ``handle_chat``). Use as a context manager or ``start()``/``stop()``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.calls = 0
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        self.arrival_times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self):
        self._httpd = ThreadingHTTPServer((HOST, self.port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.chat_server = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": SERVE_POLL_S},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release waiting handlers, stop serving and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, the client's ``base_url``."""
        assert self._httpd is not None, "server not started"
        return f"http://{HOST}:{self._httpd.server_address[1]}/v1"

    def wait(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server is stopping."""
        self._stopping.wait(seconds)

    def record_arrival(self, auth: str | None, body: dict[str, Any]) -> None:
        with self._lock:
            self.calls += 1
            self.auth_headers.append(auth)
            self.bodies.append(body)
            self.arrival_times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def record_departure(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            digests = [hashlib.sha256(json.dumps(b, sort_keys=True).encode()).hexdigest() for b in self.bodies]
            return {"calls": self.calls, "distinct_requests": len(set(digests))}

    def handle_chat(self, handler: "_Handler", body: dict[str, Any]) -> None:
        status, payload = self.complete(body)
        handler.send_json(status, payload)

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def chat_server(self) -> ChatServer:
        return self.server.chat_server  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the stats endpoint is the record."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == STATS_PATH:
            self.send_json(200, self.chat_server.stats())
        else:
            self.send_json(404, error_body(404, f"no route {self.path}"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != CHAT_PATH:
            self.send_json(404, error_body(404, f"no route {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_json(400, error_body(400, "request body is not JSON"))
            return
        server = self.chat_server
        server.record_arrival(self.headers.get("Authorization"), body)
        try:
            server.handle_chat(self, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. timed out)
        finally:
            server.record_departure()

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# ---------------------------------------------------------------------------------------------- recognising prompts

# evals/templates/alpaca_eval/alpaca_eval_clf.txt
ALPACA_EVAL = re.compile(r'"instruction": """(?P<instruction>.*?)""",\n}.*?"model_identifier": "m",\n\s*"output": '
                         r'"""(?P<first>.*?)"""\n.*?"model_identifier": "M",\n\s*"output": """(?P<second>.*?)"""\n',
                         re.S)
# evals/templates/arena_hard/*.yaml prompt_template
ARENA_HARD = re.compile(r"<\|User Prompt\|>\n(?P<instruction>.*?)\n\n<\|The Start of Assistant A's Answer\|>\n"
                        r"(?P<first>.*?)\n<\|The End of Assistant A's Answer\|>\n\n<\|The Start of Assistant B's "
                        r"Answer\|>\n(?P<second>.*?)\n<\|The End of Assistant B's Answer\|>", re.S)
# evals/templates/mt_bench/judge_prompts.jsonl: single-v1 / single-math-v1 (turn 1) and their multi-turn forms
MT_BENCH_TURN_1 = re.compile(r"\[Question\]\n(?P<instruction>.*?)\n\n(?:\[The Start of Reference Answer\].*?"
                             r"\[The End of Reference Answer\]\n\n)?\[The Start of Assistant's Answer\]\n"
                             r"(?P<answer>.*?)\n\[The End of Assistant's Answer\]", re.S)
MT_BENCH_TURN_2 = re.compile(r"<\|The Start of Assistant A's Conversation with User\|>\n\n### User:\n"
                             r"(?P<instruction>.*?)\n\n### Assistant A:\n.*?\n\n### User:\n.*?\n\n### Assistant A:\n"
                             r"(?P<answer>.*?)\n\n<\|The End of Assistant A's Conversation with User\|>", re.S)
FIRST, SECOND = "m", "M"   # AlpacaEval's identifiers of the first- and second-shown output


class UnknownPrompt(ValueError):
    pass


def recognise(messages: list[dict]) -> tuple[str, str, list[str], int]:
    """(oracle format, instruction, answers as shown, turn) of a judge conversation; the upstream prompt is the first
    user message that matches one (a later "continue" turn of Arena-Hard follows it)."""
    for message in messages:
        if message.get("role") != "user" or not isinstance(message.get("content"), str):
            continue
        text = message["content"]
        if match := ALPACA_EVAL.search(text):
            return "pairwise_alpaca_eval", match["instruction"], [match["first"], match["second"]], 1
        if match := ARENA_HARD.search(text):
            return "pairwise_arena_hard", match["instruction"], [match["first"], match["second"]], 1
        if match := MT_BENCH_TURN_2.search(text):
            return "single_mt_bench", match["instruction"], [match["answer"]], 2
        if match := MT_BENCH_TURN_1.search(text):
            return "single_mt_bench", match["instruction"], [match["answer"]], 1
    raise UnknownPrompt("no AlpacaEval, Arena-Hard or MT-Bench judge prompt in the user messages")


class OracleServer(ChatServer):
    """Answers judge prompts with the micro world's oracle, finding gold answers by instruction text."""

    def __init__(self, judge: dict, items: list[dict], port: int = 0) -> None:
        from evals.judges.oracle import OracleJudge

        super().__init__(port)
        settings = {k: v for k, v in judge.items() if k not in ("kind", "gold_reward")}
        self.oracle = OracleJudge(**settings, gold_reward=judge["gold_reward"])
        self.items = {item["turns"][0]: item for item in items}
        self.by_format: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_format = dict(self.by_format)
        return {**super().stats(), "by_format": by_format}

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages")
        if not isinstance(messages, list):
            return 400, error_body(400, "messages: expected a list of chat messages")
        try:
            fmt, instruction, answers, turn = recognise(messages)
        except UnknownPrompt as err:
            return 400, error_body(400, str(err))
        item = self.items.get(instruction)
        if item is None:
            return 400, error_body(400, f"no gold item for the instruction {instruction[:80]!r}")
        with self._lock:
            self.by_format[fmt] = self.by_format.get(fmt, 0) + 1
        gold = item["golds"][turn - 1]
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        text = self.oracle.answer({"format": fmt, "gold": gold, "answers": answers}, key)
        logprobs = None
        if fmt == "pairwise_alpaca_eval" and body.get("logprobs"):
            p_first = self.oracle.p_first_better(answers[0], answers[1], gold)
            logprobs = [alpaca_eval_logprobs(text, p_first, int(body.get("top_logprobs") or 0))]
        return 200, completion_body(body.get("model", ""), text, logprobs)


def _logprob(p: float) -> float:
    return math.log(min(max(p, 1e-12), 1.0))


def alpaca_eval_logprobs(token: str, p_first: float, top: int) -> dict[str, Any]:
    """The first token's logprob entry: the oracle's P(m) and P(M) = 1 - P(m) as its top alternatives."""
    alternatives = sorted([(FIRST, p_first), (SECOND, 1 - p_first)], key=lambda t: -t[1])[:max(top, 0)]
    entry = lambda t, p: {"token": t, "logprob": _logprob(p), "bytes": list(t.encode())}  # noqa: E731
    return {**entry(token, p_first if token == FIRST else 1 - p_first),
            "top_logprobs": [entry(t, p) for t, p in alternatives]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0: any free port (written to --port-file)")
    parser.add_argument("--port-file", type=Path, help="where to write the port once serving")
    parser.add_argument("--items", type=Path, required=True, help="gold items (world/rehearsal_mirror.py)")
    parser.add_argument("--judge-json", required=True,
                        help="the oracle's settings: temperature, verbosity_bias, length_scale, seed, gold_reward")
    args = parser.parse_args(argv)
    from pipeline.io import read_jsonl

    server = OracleServer(json.loads(args.judge_json), read_jsonl(args.items, schema="item"), args.port).start()
    if args.port_file:
        from pipeline.io import write_text

        write_text(args.port_file, str(server._httpd.server_address[1]))
    print(f"oracle judge serving {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
