"""HTTPJudge and JudgeCache against a real OpenAI-compatible server on 127.0.0.1 (tests/evals/fake_openai_server.py).

Every test is loopback-only and bounded in time (short timeouts, tiny backoffs, stalls released at teardown).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from evals.judges.base import JudgeRequest, prompt_hash
from evals.judges.cache import CacheCorruptError, JudgeCache
from evals.judges.http import (
    HTTPJudge,
    JudgeHTTPError,
    JudgeRetriesExhaustedError,
    LOOPBACK_DUMMY_KEY,
    MissingAPIKeyError,
    parse_retry_after,
)
from tests.evals.fake_openai_server import (
    FakeOpenAIServer,
    bad_request,
    expected_text,
    expected_top_logprobs,
    malformed_json,
    missing_choices,
    null_content,
    ok,
    rate_limited,
    server_error,
    stall,
)

KEY_ENV = "FAKE_JUDGE_API_KEY"
SECRET = "sk-test-SECRET-do-not-leak-4242"
MODEL = "fake-judge-model"
FAST = dict(  # small waits so every test stays well under a second or two
    concurrency=1,
    max_requests_per_second=None,
    max_retries=2,
    timeout_s=2.0,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    progress=False,
)


@pytest.fixture
def server():
    """A fresh fake server per test, stopped (and its stalls released) at teardown."""
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    return SECRET


@pytest.fixture
def make_judge(server, api_key):
    """Build an HTTPJudge pointed at the fake server; keyword args override FAST."""

    def build(**overrides) -> HTTPJudge:
        kwargs = {**FAST, "api_key_env": KEY_ENV, **overrides}
        return HTTPJudge(MODEL, server.base_url, **kwargs)

    return build


def make_requests(n: int, prefix: str = "suite") -> list[JudgeRequest]:
    """``n`` distinct requests keyed ``prefix/i``; each prompt contains the marker ``<item i>``."""
    return [
        JudgeRequest(
            key=f"{prefix}/{i}",
            messages=[
                {"role": "system", "content": "You are a fair judge."},
                {"role": "user", "content": f"Compare the two answers for <item {i}> of {prefix}."},
            ],
        )
        for i in range(n)
    ]


# -- normal operation -----------------------------------------------------------------------------------


def test_normal_answers_come_back_in_request_order(server, make_judge, api_key):
    requests = make_requests(6)
    server.script_for("<item 0>", ok(delay_s=0.3))  # the first request finishes last
    judge = make_judge(concurrency=3)
    responses = judge.judge(requests)

    assert [r.key for r in responses] == [r.key for r in requests]
    assert [r.text for r in responses] == [expected_text(r.messages) for r in requests]
    for request, response in zip(requests, responses):
        assert response.judge_id == MODEL
        assert response.prompt_hash == prompt_hash(MODEL, request.messages, judge.sampling)
        assert response.cache_hit is False
        assert response.latency_s > 0
    assert server.calls == len(requests)
    assert set(server.auth_headers) == {f"Bearer {api_key}"}
    body = server.bodies[0]
    assert body["model"] == MODEL and body["temperature"] == judge.sampling["temperature"]
    assert body["max_tokens"] == judge.sampling["max_tokens"]


def test_rating_style_and_custom_sampling_are_sent(server, make_judge):
    server.style = "rating"
    sampling = {"temperature": 0.3, "max_tokens": 17, "top_p": 0.9}
    [response] = make_judge(sampling=sampling).judge(make_requests(1))
    assert "Rating: [[" in response.text
    assert {k: server.bodies[0][k] for k in sampling} == sampling


def test_protocol_sampling_and_logprobs_round_trip_through_the_cache(server, make_judge, tmp_path):
    """AlpacaEval's weighted annotator: the request's own sampling (max_tokens 1, logprobs, top_logprobs 5) goes
    over the judge's, its top logprobs come back in the OpenAI shape, and a rerun answers them from the cache
    without a call (a cache that kept only the text would silently lose the weighted preference)."""
    import dataclasses

    from evals.judges.base import request_sampling

    protocol = {"max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5}
    requests = [dataclasses.replace(r, sampling=protocol) for r in make_requests(2)]
    cache = JudgeCache(tmp_path / "cache.jsonl")
    first = make_judge(cache=cache).judge(requests)
    assert {k: server.bodies[0][k] for k in protocol} == protocol
    for request, response in zip(requests, first):
        assert response.top_logprobs == expected_top_logprobs(request.messages)
        assert response.text == response.top_logprobs[0]["token"]
    again = make_judge(cache=JudgeCache(tmp_path / "cache.jsonl")).judge(requests)
    assert server.calls == 2 and all(r.cache_hit for r in again)
    assert [r.top_logprobs for r in again] == [r.top_logprobs for r in first]
    assert first[0].prompt_hash == prompt_hash(MODEL, requests[0].messages,
                                               request_sampling({"temperature": 0.0, "max_tokens": 1024}, requests[0]))


def test_empty_batch_makes_no_calls(server, make_judge):
    assert make_judge().judge([]) == []
    assert server.calls == 0


# -- retries --------------------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_after_the_wait(server, make_judge):
    retry_after_s = 1
    server.script(rate_limited(str(retry_after_s)))
    [response] = make_judge(backoff_base_s=0.01).judge(make_requests(1))
    assert response.text == expected_text(make_requests(1)[0].messages)
    assert server.calls == 2
    first, second = server.arrival_times
    assert second - first >= retry_after_s


def test_500_then_success(server, make_judge):
    server.script(server_error(500), server_error(503))
    [response] = make_judge(max_retries=2).judge(make_requests(1))
    assert response.text == expected_text(make_requests(1)[0].messages)
    assert server.calls == 3


def test_stall_times_out_and_is_retried(server, make_judge):
    timeout_s = 0.4
    server.script(stall(stall_s=10))
    start = time.monotonic()
    [response] = make_judge(timeout_s=timeout_s).judge(make_requests(1))
    elapsed = time.monotonic() - start
    assert response.text == expected_text(make_requests(1)[0].messages)
    assert server.calls == 2
    assert timeout_s <= elapsed < timeout_s + 2


@pytest.mark.parametrize("bad", [malformed_json, missing_choices, null_content], ids=lambda f: f.__name__)
def test_malformed_response_then_success(server, make_judge, bad):
    server.script(bad())
    [response] = make_judge().judge(make_requests(1))
    assert response.text == expected_text(make_requests(1)[0].messages)
    assert server.calls == 2


def test_persistent_failure_raises_naming_the_key(server, make_judge):
    max_retries = 2
    server.script_for("<item 1>", *[server_error(502)] * (max_retries + 1))
    with pytest.raises(JudgeRetriesExhaustedError) as info:
        make_judge(max_retries=max_retries).judge(make_requests(2))
    assert "'suite/1'" in str(info.value) and "HTTP 502" in str(info.value)
    assert info.value.key == "suite/1" and info.value.attempts == max_retries + 1


def test_persistent_malformed_raises(server, make_judge):
    server.script(*[missing_choices()] * 2)
    with pytest.raises(JudgeRetriesExhaustedError, match=r"'suite/0'.*malformed"):
        make_judge(max_retries=1).judge(make_requests(1))
    assert server.calls == 2


def test_400_raises_immediately_with_status_and_body(server, make_judge):
    server.script(bad_request(400))
    start = time.monotonic()
    with pytest.raises(JudgeHTTPError) as info:
        make_judge(max_retries=5, backoff_base_s=1.0, backoff_max_s=1.0).judge(make_requests(1))
    assert time.monotonic() - start < 1.0
    assert info.value.status == 400 and "scripted HTTP 400" in info.value.body
    assert "400" in str(info.value) and "'suite/0'" in str(info.value)
    assert server.calls == 1


def test_error_in_one_request_stops_the_batch(server, make_judge):
    server.script_for("<item 0>", bad_request(422))
    with pytest.raises(JudgeHTTPError):
        make_judge(concurrency=1).judge(make_requests(20))
    assert server.calls < 20  # queued requests were cancelled


# -- cache ----------------------------------------------------------------------------------------------


def test_second_run_with_same_cache_makes_no_http_calls(server, make_judge, tmp_path):
    cache_path = tmp_path / "judge_cache.jsonl"
    requests = make_requests(4)
    first = make_judge(cache=JudgeCache(cache_path), concurrency=2).judge(requests)
    calls_after_first = server.calls
    assert calls_after_first == len(requests)

    second = make_judge(cache=JudgeCache(cache_path)).judge(requests)  # fresh instance: reloads from disk
    assert server.calls == calls_after_first
    assert all(r.cache_hit for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.prompt_hash for r in second] == [r.prompt_hash for r in first]


def test_changed_sampling_misses_the_cache(server, make_judge, tmp_path):
    cache = JudgeCache(tmp_path / "c.jsonl")
    requests = make_requests(2)
    make_judge(cache=cache, sampling={"temperature": 0.0, "max_tokens": 64}).judge(requests)
    calls = server.calls
    responses = make_judge(cache=cache, sampling={"temperature": 0.7, "max_tokens": 64}).judge(requests)
    assert server.calls == calls + len(requests)
    assert not any(r.cache_hit for r in responses)


def test_api_key_never_reaches_cache_logs_or_errors(server, make_judge, tmp_path, caplog, api_key):
    caplog.set_level(logging.DEBUG)
    cache_path = tmp_path / "c.jsonl"
    server.script(server_error(500), ok(), bad_request(400, echo_auth=True))
    judge = make_judge(cache=JudgeCache(cache_path))
    judge.judge(make_requests(1, prefix="a"))  # retried once (logged), then cached
    with pytest.raises(JudgeHTTPError) as info:
        judge.judge(make_requests(1, prefix="b_other"))  # the server echoes the Authorization header
    assert server.auth_headers[-1] == f"Bearer {api_key}"  # it really was sent ...
    assert api_key not in str(info.value)  # ... but is redacted from the error
    assert "***" in str(info.value)
    assert api_key not in cache_path.read_text()
    assert api_key not in caplog.text
    assert api_key not in repr(judge)
    lines = [json.loads(line) for line in cache_path.read_text().splitlines()]
    assert set(lines[0]) == {"prompt_hash", "judge_id", "text", "latency_s", "timestamp"}


def test_missing_key_is_a_clear_error_unless_loopback(monkeypatch, server):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(MissingAPIKeyError, match=KEY_ENV):
        HTTPJudge(MODEL, "https://api.example.com/v1", api_key_env=KEY_ENV)
    judge = HTTPJudge(MODEL, server.base_url, api_key_env=KEY_ENV, **FAST)
    judge.judge(make_requests(1))
    assert server.auth_headers == [f"Bearer {LOOPBACK_DUMMY_KEY}"]


# -- concurrency and rate limit -------------------------------------------------------------------------


def test_concurrency_overlaps_while_rate_limit_caps_calls_per_second(api_key):
    rps, n = 10.0, 12
    interval, jitter_s = 1.0 / rps, 0.05  # tolerance for loopback/thread-scheduling jitter in arrival times
    with FakeOpenAIServer(default_delay_s=0.3) as server:  # each answer takes 3 intervals: calls must overlap
        overrides = {"concurrency": 4, "max_requests_per_second": rps}
        judge = HTTPJudge(MODEL, server.base_url, **{**FAST, "api_key_env": KEY_ENV, **overrides})
        judge.judge(make_requests(n))
        assert server.max_in_flight > 1
        times = sorted(server.arrival_times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= interval - jitter_s
    assert times[-1] - times[0] >= (n - 1) * interval - jitter_s
    calls_in_any_second = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert calls_in_any_second <= rps + 1  # +1: a late first arrival may share a window with the 11th slot


def test_unlimited_rate_runs_all_in_parallel(api_key):
    n = 4
    with FakeOpenAIServer(default_delay_s=0.3) as server:
        judge = HTTPJudge(MODEL, server.base_url, **{**FAST, "api_key_env": KEY_ENV, "concurrency": n})
        start = time.monotonic()
        judge.judge(make_requests(n))
        assert time.monotonic() - start < 0.3 * n
        assert server.max_in_flight == n


# -- cache file robustness ------------------------------------------------------------------------------


def test_truncated_last_line_is_ignored_with_a_warning_and_repaired(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    cache = JudgeCache(path)
    cache.put("h1", "one", 0.1)
    cache.put("h2", "two", 0.2)
    with open(path, "a") as fh:
        fh.write('{"prompt_hash": "h3", "te')  # crash mid-write
    with caplog.at_level(logging.WARNING):
        reloaded = JudgeCache(path)
    assert "truncated last line 3" in caplog.text and str(path) in caplog.text
    assert len(reloaded) == 2 and reloaded.get("h3") is None
    reloaded.put("h4", "four", 0.4)  # the torn tail is cut off before appending
    caplog.clear()
    again = JudgeCache(path)
    assert not caplog.records
    assert [again.get(h).text for h in ("h1", "h2", "h4")] == ["one", "two", "four"]


def test_corrupt_middle_line_raises_naming_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = JudgeCache(path)
    cache.put("h1", "one", 0.1)
    good = path.read_text()
    path.write_text(good + "this is not json\n" + good)
    with pytest.raises(CacheCorruptError, match=r"line 2") as info:
        JudgeCache(path)
    assert str(path) in str(info.value) and info.value.line_no == 2


def test_corrupt_terminated_last_line_raises(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"prompt_hash": "h1", "text": "x", "latency_s": 1, "timestamp": "t"}\n{"bad": 1}\n')
    with pytest.raises(CacheCorruptError, match=r"line 2.*prompt_hash"):
        JudgeCache(path)


def test_cache_is_thread_safe(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = JudgeCache(path)
    n_threads, per_thread = 8, 25
    threads = [
        threading.Thread(target=lambda t=t: [cache.put(f"{t}-{i}", "x" * 100, 0.0) for i in range(per_thread)])
        for t in range(n_threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(JudgeCache(path)) == n_threads * per_thread == len(cache)


def test_invalid_configuration_is_rejected(api_key):
    with pytest.raises(ValueError, match="model"):
        HTTPJudge(MODEL, "http://127.0.0.1:1/v1", api_key_env=KEY_ENV, sampling={"model": "other"})
    with pytest.raises(ValueError, match="concurrency"):
        HTTPJudge(MODEL, "http://127.0.0.1:1/v1", api_key_env=KEY_ENV, concurrency=0)
    with pytest.raises(ValueError, match="max_requests_per_second"):
        HTTPJudge(MODEL, "http://127.0.0.1:1/v1", api_key_env=KEY_ENV, max_requests_per_second=0)


def test_connection_refused_is_retried_then_raises(api_key):
    with FakeOpenAIServer() as server:
        base_url = server.base_url
    judge = HTTPJudge(MODEL, base_url, **{**FAST, "api_key_env": KEY_ENV, "max_retries": 1})
    with pytest.raises(JudgeRetriesExhaustedError, match=r"'suite/0'.*connection error"):
        judge.judge(make_requests(1))


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past


def test_cache_path_is_created_lazily(tmp_path: Path):
    path = tmp_path / "sub" / "c.jsonl"
    cache = JudgeCache(path)
    assert not path.exists() and len(cache) == 0
    cache.put("h", "t", 0.5)
    assert JudgeCache(path).get("h").latency_s == 0.5
