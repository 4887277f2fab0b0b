"""Judge faults and secrets: the real evaluation entry point (a subprocess, as Snakemake runs it) against
the loopback fake OpenAI server (tests/evals/fake_openai_server.py). Each fault either stops with one line naming
what failed, or is recorded and survived where upstream survives it (said in the test's docstring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evals.judges.http import HTTPJudge, InsecureEndpointError, JudgeRequestError, MissingAPIKeyError
from evals.judges.base import JudgeRequest
from evals.registry import get_suite
from pipeline.io import read_jsonl
from tests.evals.conftest import CHAT_SUITES
from tests.evals.fake_openai_server import (FakeOpenAIServer, answer, bad_request, malformed_json, rate_limited,
                                            redirect, server_error)

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "H10_FAKE_JUDGE_KEY"
SECRET = "sk-h10-FAKE-secret-9f8e7d6c5b4a"
STYLE = {"alpaca_eval": "pairwise", "mt_bench": "rating", "arena_hard": "pairwise"}


def stage(args: list[str], log: Path, key: str | None = SECRET) -> subprocess.CompletedProcess:
    """``python -m evals.evaluate ...`` as the evaluate rule runs it, its output captured into ``log`` (as
    ``> {log} 2>&1``)."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if key is not None:
        env[KEY_ENV] = key
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        proc = subprocess.run([sys.executable, "-m", "evals.evaluate", *args], stdout=handle,
                              stderr=subprocess.STDOUT, cwd=ROOT, env={**env, "OMP_NUM_THREADS": "1"}, timeout=120)
    return proc


def evaluate_args(suite, server, folder, eval_data, config, root: Path, settings: dict | None = None,
                  **block) -> list[str]:
    """One suite judged by the HTTP judge ``gpt`` (its block: ``block`` over the defaults) and scored under
    ``settings`` (default: the suite's config block)."""
    s = get_suite(suite)
    judge = {"kind": "http", "model": "fake-judge", "base_url": server.base_url, "api_key_env": KEY_ENV, "concurrency": 2, "max_retries": 2, "timeout_s": 10,
             "max_requests_per_second": 1000, **block}
    settings = {**(settings if settings is not None else config["evals"][suite]), "judge": "gpt"}
    data = dict.fromkeys([*s.judge_inputs(settings), *s.score_inputs(settings)])
    return ["--model", "verbose", "--evals-json", json.dumps({suite: settings}),
            "--judges-json", json.dumps({"gpt": judge}), "--generations-dir", str(folder),
            "--data", *[f"{k}={eval_data[k]}" for k in data], "--judge-cache", str(root / "judge_cache"),
            "--judgments-dir", str(root / "judgments"), "--scores-dir", str(root / "scores")]


ANY_SHARE = {"max_unparsable_share": 1.0}


def last_line(log: Path) -> str:
    lines = log.read_text().strip().splitlines()
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------------------- secrets
def test_fake_key_appears_in_no_file_and_no_log_after_failures_and_success(generate_for, eval_data, config,
                                                                            tmp_path):
    """Bug guarded: the key leaking into judgments, cache, scores or logs on any path: a 500 retried, a 400 whose
    body echoes the Authorization header, malformed bodies, then success and scoring."""
    folder, _ = generate_for("verbose", "verbose")
    logs = tmp_path / "logs"
    for suite in CHAT_SUITES:
        settings = {**config["evals"][suite], **ANY_SHARE}
        with FakeOpenAIServer(style=STYLE[suite]) as server:
            server.script(server_error(500), malformed_json(), bad_request(400, echo_auth=True))
            failed = stage(evaluate_args(suite, server, folder, eval_data, config, tmp_path, settings),
                           logs / f"{suite}.fail.log")
            assert failed.returncode == 1
            assert f"Bearer {SECRET}" in server.auth_headers  # it really was sent (loopback, https not needed)
            assert "failed with HTTP 400" in last_line(logs / f"{suite}.fail.log")
            done = stage(evaluate_args(suite, server, folder, eval_data, config, tmp_path, settings),
                         logs / f"{suite}.log")
            assert done.returncode == 0, (logs / f"{suite}.log").read_text()
        assert (tmp_path / "scores" / f"{suite}.json").is_file()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 3 * 5
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []


def test_key_with_a_newline_stops_in_one_line_without_the_key(generate_for, eval_data, config, tmp_path):
    """Bug guarded: a key with a stray CR/LF made http.client raise a ValueError quoting `Bearer <key>`, which
    ended up in the rule's log and on the console."""
    folder, _ = generate_for("verbose", "verbose")
    log = tmp_path / "judge.log"
    with FakeOpenAIServer(style="rating") as server:
        proc = stage(evaluate_args("mt_bench", server, folder, eval_data, config, tmp_path), log,
                     key=SECRET + "\r\n")
        assert server.calls == 0
    assert proc.returncode == 1
    text = log.read_text()
    assert SECRET not in text and len(text.strip().splitlines()) == 1
    assert text.startswith(f"error: environment variable {KEY_ENV} holds a character not allowed in an HTTP header")


def test_unforeseen_transport_error_quoting_the_key_is_redacted(monkeypatch):
    """Bug guarded: an exception type nobody listed (here a ValueError quoting the header, as http.client raises)
    escaping with the key in its text."""
    import requests

    def broken_post(self, url, **kwargs):
        raise ValueError(f"Invalid header value b'Bearer {SECRET}'")

    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.setattr(requests.Session, "post", broken_post)
    judge = HTTPJudge("m", "https://api.openai.com/v1", api_key_env=KEY_ENV, progress=False)
    with pytest.raises(JudgeRequestError) as info:
        judge.judge([JudgeRequest("k", [{"role": "user", "content": "q"}])])
    assert SECRET not in str(info.value) and "Bearer ***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_key_is_never_sent_over_plain_http_or_by_default_to_another_host(monkeypatch):
    """Bug guarded: a judge block with a custom base_url and no api_key_env sent the OpenAI key there, even over
    plain http."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(InsecureEndpointError, match=r"http://judge\.example\.org/v1 is plain http and not loopback"):
        HTTPJudge("m", "http://judge.example.org/v1", api_key_env="OPENAI_API_KEY")
    with pytest.raises(InsecureEndpointError, match=r"https://judge\.example\.org/v1: name the environment variable"):
        HTTPJudge("m", "https://judge.example.org/v1")
    assert HTTPJudge("m", "https://api.openai.com/v1").api_key_env == "OPENAI_API_KEY"


def test_redirect_is_not_followed_with_the_key(monkeypatch):
    """Bug guarded: a 307 from the endpoint carrying the Authorization header to another URL."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as target, FakeOpenAIServer() as server:
        server.script(redirect(target.base_url + "/chat/completions"))
        judge = HTTPJudge("m", server.base_url, api_key_env=KEY_ENV, progress=False, max_retries=0)
        with pytest.raises(Exception, match=r"HTTP 307: redirect to .* not followed"):
            judge.judge([JudgeRequest("k", [{"role": "user", "content": "q"}])])
        assert target.calls == 0


def test_empty_key_variable_is_refused(monkeypatch):
    """Bug guarded: an empty OPENAI_API_KEY accepted, every call then failing with 401."""
    monkeypatch.setenv(KEY_ENV, "")
    with pytest.raises(MissingAPIKeyError, match=f"environment variable {KEY_ENV} is empty"):
        HTTPJudge("m", "https://api.openai.com/v1", api_key_env=KEY_ENV)


# -------------------------------------------------------------------------------------------------- faults
def test_http_500_forever_ends_in_one_clear_line(generate_for, eval_data, config, tmp_path):
    """Bug guarded: a judge endpoint answering 500 forever ended the rule in a traceback."""
    folder, _ = generate_for("verbose", "verbose")
    log = tmp_path / "judge.log"
    with FakeOpenAIServer(style="rating") as server:
        server.script(*[server_error(500)] * 50)
        proc = stage(evaluate_args("mt_bench", server, folder, eval_data, config, tmp_path,
                                   concurrency=1, max_retries=2), log)
    assert proc.returncode == 1
    text = log.read_text()
    assert "Traceback" not in text
    assert last_line(log).startswith("error: judge request 'mt_bench/") and "failed after 3 attempts" in text
    assert "HTTP 500" in last_line(log)


def test_retry_after_300_is_bounded_by_the_retry_time_budget(monkeypatch):
    """Bug guarded: `Retry-After: 300` on every attempt held one request about 35 minutes (7 x 300 s)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as server:
        server.script(*[rate_limited("300")] * 10)
        judge = HTTPJudge("m", server.base_url, api_key_env=KEY_ENV, progress=False, max_retries=6,
                          max_retry_time_s=30)
        started = time.monotonic()
        with pytest.raises(Exception, match=r"failed after 1 attempts \(the next wait, 300 s, would pass "
                                            r"max_retry_time_s = 30 s of retry waits\)"):
            judge.judge([JudgeRequest("k", [{"role": "user", "content": "q"}])])
        assert time.monotonic() - started < 10 and server.calls == 1


def test_rating_with_a_leading_zero_is_unparsable_not_a_crash_and_rerun_is_free(generate_for, eval_data, config,
                                                                                tmp_path):
    """Bug guarded: `Rating: [[07]]` raised SyntaxError (literal_eval) after the reply was cached, so every rerun
    crashed. Follows FastChat's rule for what it cannot read (score -1, kept in the file, excluded from the means);
    FastChat itself crashes on this reply."""
    folder, _ = generate_for("verbose", "verbose")
    with FakeOpenAIServer(style="rating") as server:
        server.script(answer("The answer is fine.\nRating: [[07]]"))
        for attempt in ("first", "rerun"):
            proc = stage(evaluate_args("mt_bench", server, folder, eval_data, config, tmp_path,
                                       concurrency=1), tmp_path / f"{attempt}.log")
            assert proc.returncode == 0, (tmp_path / f"{attempt}.log").read_text()
        calls = server.calls
    rows = read_jsonl(tmp_path / "judgments" / "mt_bench.jsonl")
    assert calls == len(rows)  # the rerun made no call
    assert [r["score"] for r in rows].count(-1) == 1
    assert any("[[07]]" in r["judgment"] for r in rows if r["score"] == -1)


@pytest.mark.parametrize("suite", ["alpaca_eval", "mt_bench"])
def test_all_verdicts_unparsable_fails_past_the_share_and_never_writes_nan(suite, generate_for, eval_data, config,
                                                                           tmp_path):
    """Bug guarded: every verdict unparsable gave win rate, LC or MT-Bench NaN, written as bare `NaN` (invalid
    JSON) and shown as a blank cell. Below the configured share unparsable verdicts are kept and excluded (as
    upstream AlpacaEval drops NaN preferences and FastChat drops score -1); past it the score stage stops naming the
    file; allowed (share 1.0), the undefined values are null."""
    folder, _ = generate_for("verbose", "verbose")
    log = tmp_path / "evaluate.log"
    with FakeOpenAIServer(style=STYLE[suite]) as server:
        server.script(*[answer("I cannot decide.")] * 200)
        proc = stage(evaluate_args(suite, server, folder, eval_data, config, tmp_path), log)
        assert proc.returncode == 2
        judgments = tmp_path / "judgments" / f"{suite}.jsonl"
        assert last_line(log).startswith(f"error: {judgments}: ")
        assert f"judge verdicts unparsable (100%), more than evals.{suite}.max_unparsable_share = 0.2" in last_line(log)
        calls = server.calls
        proc = stage(evaluate_args(suite, server, folder, eval_data, config, tmp_path,
                                   {**config["evals"][suite], **ANY_SHARE}), log)
        assert proc.returncode == 0, log.read_text()
        assert server.calls == calls  # judged again from the cache
    text = (tmp_path / "scores" / f"{suite}.json").read_text()
    score = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the score file"))
    headline = "win_rate" if suite == "alpaca_eval" else "overall"
    assert score["metrics"][headline]["value"] is None


def test_some_unparsable_verdicts_are_kept_and_excluded(generate_for, eval_data, config, tmp_path):
    """Bug guarded: one unreadable verdict failing the stage, or counting as a score. Follows FastChat (score -1
    kept in the judgment file, dropped from the means)."""
    folder, _ = generate_for("verbose", "verbose")
    with FakeOpenAIServer(style="rating") as server:
        server.script(answer("No rating here."))
        proc = stage(evaluate_args("mt_bench", server, folder, eval_data, config, tmp_path, concurrency=1),
                     tmp_path / "evaluate.log")
    assert proc.returncode == 0, (tmp_path / "evaluate.log").read_text()
    rows = read_jsonl(tmp_path / "judgments" / "mt_bench.jsonl")
    metrics = json.loads((tmp_path / "scores" / "mt_bench.json").read_text())["metrics"]
    parsed = [r["score"] for r in rows if r["score"] != -1]
    assert len(parsed) == len(rows) - 1 and metrics["n_unparsable"]["value"] == 1
    assert metrics["overall"]["value"] == pytest.approx(sum(parsed) / len(parsed))


def test_arena_hard_with_no_parsed_game_stops_naming_the_file(generate_for, eval_data, config, tmp_path):
    """Bug guarded: a Bradley-Terry fit over zero battles producing NaN scores. Arena-Hard drops null games as
    upstream; with none left the stage stops in one line naming the judgment file."""
    folder, _ = generate_for("verbose", "verbose")
    with FakeOpenAIServer() as server:
        server.script(*[answer("I cannot decide.")] * 200)
        proc = stage(evaluate_args("arena_hard", server, folder, eval_data, config, tmp_path),
                     tmp_path / "evaluate.log")
    assert proc.returncode == 2
    assert last_line(tmp_path / "evaluate.log").startswith(
        f"error: {tmp_path / 'judgments' / 'arena_hard.jsonl'}: no judgment with")
