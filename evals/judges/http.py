"""A judge behind any OpenAI-compatible ``/chat/completions`` endpoint, with retries, a rate limit and a cache.

``HTTPJudge.judge(requests)`` answers cache hits from :class:`~evals.judges.cache.JudgeCache` without any HTTP
call and sends the rest concurrently from a thread pool. Every HTTP attempt (retries included) first takes a
slot from one rate limiter shared by all threads. 429, 408, 5xx, connection errors, timeouts and malformed
response bodies are retried with exponential backoff plus jitter, or after ``Retry-After`` seconds when the
server sends it; any other 4xx raises :class:`JudgeHTTPError` at once. Retries of one request stop when their waits
would pass ``max_retry_time_s`` in total. The API key is read from the environment once, sent only in the
``Authorization`` header, only over https (or to loopback), never across a redirect, and never logged, cached or
put in an error message: every exception that leaves this module has the key redacted.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any

# Library: plain `requests` (already a dependency) exposes every status code, Retry-After header and timeout
# directly, so retries, rate limiting and call counting stay ours and testable without the openai client's layers.
import requests
import requests.auth
from tqdm import tqdm

from urllib.parse import urlparse

from pipeline.config import DEFAULT_API_KEY_ENV, OPENAI_HOST, is_loopback_url
from pipeline.io import StageError
from evals.judges.base import JudgeRequest, JudgeResponse, prompt_hash, request_sampling
from evals.judges.cache import JudgeCache

logger = logging.getLogger(__name__)

DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1024}
LOOPBACK_DUMMY_KEY = "sk-loopback-dummy"
RETRYABLE_4XX = frozenset({408, 429})
SERVER_ERROR_MIN = 500
CLIENT_ERROR_MIN = 400
ERROR_BODY_MAX_CHARS = 500
REDACTED = "***"
_RESERVED_SAMPLING_KEYS = frozenset({"model", "messages"})


class JudgeError(StageError):
    """A judge failure: one line, with the API key redacted."""


class MissingAPIKeyError(JudgeError):
    """The API key environment variable is unset, empty or unusable for a non-loopback endpoint."""


class InsecureEndpointError(JudgeError):
    """A key would go to a plain-http non-loopback endpoint, or a custom endpoint would get the default key."""


class JudgeRequestError(JudgeError):
    """A request could not even be sent (e.g. ``requests`` refused a header): the cause, redacted."""


class JudgeHTTPError(JudgeError):
    """A non-retryable HTTP error (4xx other than 408/429)."""

    def __init__(self, key: str, status: int, body: str) -> None:
        super().__init__(f"judge request {key!r} failed with HTTP {status}: {body}")
        self.key = key
        self.status = status
        self.body = body


class JudgeRetriesExhaustedError(JudgeError):
    """A request still failed after ``max_retries`` retries, or its retry time budget ran out."""

    def __init__(self, key: str, attempts: int, last_error: str, why: str = "") -> None:
        super().__init__(f"judge request {key!r} failed after {attempts} attempts{why}; last error: {last_error}")
        self.key = key
        self.attempts = attempts
        self.last_error = last_error


class BatchAbortedError(RuntimeError):
    """Raised inside a worker when another request of the same batch already failed."""


class _RetryableError(Exception):
    """One failed attempt worth retrying; ``retry_after_s`` is the server's ``Retry-After``, if any."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Spaces calls at least ``1 / max_per_second`` apart across all threads (``None``: no limit)."""

    def __init__(self, max_per_second: float | None) -> None:
        if max_per_second is not None and max_per_second <= 0:
            raise ValueError(f"max_requests_per_second must be > 0 or None, got {max_per_second}")
        self._interval = 0.0 if max_per_second is None else 1.0 / max_per_second
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller's slot; slots are handed out in arrival order."""
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def extract_top_logprobs(payload: Any) -> list[dict[str, Any]]:
    """``choices[0].logprobs.content[0].top_logprobs`` (the first token's alternatives, as alpaca_eval's
    ``logprob_parser`` reads them); raises ``ValueError`` if it is not there."""
    try:
        top = payload["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"no choices[0].logprobs.content[0].top_logprobs in response ({type(exc).__name__}: "
                         f"{exc})") from exc
    if not isinstance(top, list) or not all(isinstance(t, dict) and "token" in t and "logprob" in t for t in top):
        raise ValueError("top_logprobs is not a list of {token, logprob}")
    return [{"token": t["token"], "logprob": float(t["logprob"])} for t in top]


def extract_content(payload: Any) -> str:
    """``choices[0].message.content`` of a chat completion; raises ``ValueError`` if it is not there."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"no choices[0].message.content in response ({type(exc).__name__}: {exc})") from exc
    if not isinstance(content, str):
        raise ValueError(f"choices[0].message.content is {type(content).__name__}, not a string")
    return content


class HTTPJudge:
    """An OpenAI-compatible chat-completions judge; implements the :class:`~evals.judges.base.Judge` protocol."""

    def __init__(
        self,
        judge_id: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        sampling: dict[str, Any] | None = None,
        concurrency: int = 8,
        max_requests_per_second: float | None = 5.0,
        max_retries: int = 6,
        timeout_s: float = 120.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_max_s: float = 300.0,
        max_retry_time_s: float = 900.0,
        cache: JudgeCache | None = None,
        progress: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        """``judge_id`` is the model name sent as ``model``; ``sampling`` is merged into every request body.

        ``max_retries`` counts retries after the first attempt. ``Retry-After`` waits are capped at
        ``retry_after_max_s``, and all waits of one request at ``max_retry_time_s``. ``rng`` drives backoff jitter
        (seed it for reproducible waits). ``api_key_env`` may be omitted only for api.openai.com and loopback.
        """
        self.judge_id = judge_id
        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.sampling = dict(DEFAULT_SAMPLING if sampling is None else sampling)
        self._check_config(concurrency, max_retries, timeout_s, backoff_base_s, backoff_max_s)
        self.api_key_env = self._check_endpoint(self.base_url, api_key_env)
        self._auth = _BearerAuth(self._read_api_key(self.api_key_env, self.base_url))
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        if max_retry_time_s <= 0:
            raise ValueError(f"max_retry_time_s must be > 0, got {max_retry_time_s}")
        self.max_retry_time_s = max_retry_time_s
        self.cache = cache
        self.progress = progress
        self._rate_limiter = RateLimiter(max_requests_per_second)
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HTTPJudge(judge_id={self.judge_id!r}, base_url={self.base_url!r}, sampling={self.sampling!r})"

    # -- configuration -------------------------------------------------------------------------------

    def _check_config(
        self, concurrency: int, max_retries: int, timeout_s: float, backoff_base_s: float, backoff_max_s: float
    ) -> None:
        """Reject nonsensical settings early."""
        reserved = _RESERVED_SAMPLING_KEYS & self.sampling.keys()
        if reserved:
            raise ValueError(f"sampling must not set {sorted(reserved)}; they come from judge_id and the request")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if backoff_base_s < 0 or backoff_max_s < backoff_base_s:
            raise ValueError(f"need 0 <= backoff_base_s <= backoff_max_s, got {backoff_base_s}, {backoff_max_s}")

    @staticmethod
    def _check_endpoint(base_url: str, api_key_env: str | None) -> str:
        """The key variable to read; refuses plain http off loopback and a custom endpoint without its own variable
        (the OpenAI key must never be sent to another host)."""
        loopback = is_loopback_url(base_url)
        if urlparse(base_url).scheme != "https" and not loopback:
            raise InsecureEndpointError(f"judge endpoint {base_url} is plain http and not loopback; expected https "
                                        f"(the API key would travel in clear text)")
        if api_key_env is None:
            if not loopback and urlparse(base_url).hostname != OPENAI_HOST:
                raise InsecureEndpointError(f"judge endpoint {base_url}: name the environment variable holding its "
                                            f"key (api_key_env); only {OPENAI_HOST} defaults to {DEFAULT_API_KEY_ENV}")
            return DEFAULT_API_KEY_ENV
        return api_key_env

    @staticmethod
    def _read_api_key(api_key_env: str, base_url: str) -> str:
        """The key from ``api_key_env``; a dummy one for loopback endpoints, otherwise a clear error (never the key)."""
        key = os.environ.get(api_key_env, "")
        if not key.strip():
            if is_loopback_url(base_url):
                return LOOPBACK_DUMMY_KEY
            state = "empty" if api_key_env in os.environ else "not set"
            raise MissingAPIKeyError(f"environment variable {api_key_env} is {state}; it must hold the API key for "
                                     f"{base_url}")
        if not all(" " < ch < "\x7f" for ch in key):  # CR/LF/space/non-ASCII: http.client would echo it in a ValueError
            raise MissingAPIKeyError(f"environment variable {api_key_env} holds a character not allowed in an HTTP "
                                     f"header (a stray newline, space or non-ASCII character?); expected the bare key")
        return key

    # -- public API ----------------------------------------------------------------------------------

    def judge(self, requests: list[JudgeRequest]) -> list[JudgeResponse]:
        """Answer every request, in request order: cache hits first, the rest over HTTP concurrently."""
        results: list[JudgeResponse | None] = [None] * len(requests)
        hashes = [prompt_hash(self.judge_id, r.messages, request_sampling(self.sampling, r)) for r in requests]
        with tqdm(total=len(requests), desc=f"judge {self.judge_id}", disable=not self.progress) as bar:
            misses = self._fill_cache_hits(requests, hashes, results, bar)
            try:
                self._fetch_misses(requests, hashes, misses, results, bar)
            except JudgeError:
                raise
            except Exception as exc:  # anything unforeseen: its text may hold the key (e.g. a header echo)
                raise JudgeRequestError(self._redact(f"{type(exc).__name__}: {exc}")) from None
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # -- orchestration -------------------------------------------------------------------------------

    def _fill_cache_hits(
        self, requests: list[JudgeRequest], hashes: list[str], results: list[JudgeResponse | None], bar: tqdm
    ) -> list[int]:
        """Put cached answers into ``results``; return the indices that still need an HTTP call."""
        misses: list[int] = []
        for i, (request, key_hash) in enumerate(zip(requests, hashes)):
            entry = self.cache.get(key_hash) if self.cache is not None else None
            if entry is None:
                misses.append(i)
                continue
            results[i] = JudgeResponse(request.key, self.judge_id, key_hash, entry.text, entry.latency_s, True,
                                       entry.top_logprobs)
            bar.update(1)
        return misses

    def _fetch_misses(
        self,
        requests: list[JudgeRequest],
        hashes: list[str],
        misses: list[int],
        results: list[JudgeResponse | None],
        bar: tqdm,
    ) -> None:
        """Run the cache misses on the thread pool; the first failure stops the batch and is raised."""
        if not misses:
            return
        with _Batch() as batch, ThreadPoolExecutor(self.concurrency, thread_name_prefix="judge") as pool:
            futures: dict[Future[JudgeResponse], int] = {
                pool.submit(self._judge_one, requests[i], hashes[i], batch): i for i in misses
            }
            pending: set[Future[JudgeResponse]] = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        batch.abort.set()  # in-flight workers stop retrying; queued ones are cancelled
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise error
                    results[futures[future]] = future.result()
                    bar.update(1)

    def _judge_one(self, request: JudgeRequest, key_hash: str, batch: _Batch) -> JudgeResponse:
        """One request over HTTP (with retries), cached on success."""
        (text, top_logprobs), latency_s = self._call_with_retries(request, batch)
        if self.cache is not None:
            self.cache.put(key_hash, text, latency_s, judge_id=self.judge_id, top_logprobs=top_logprobs)
        return JudgeResponse(request.key, self.judge_id, key_hash, text, latency_s, False, top_logprobs)

    # -- retries -------------------------------------------------------------------------------------

    def _call_with_retries(self, request: JudgeRequest, batch: _Batch) -> tuple[tuple[str, Any], float]:
        """Attempt up to ``1 + max_retries`` times; return ``((text, top_logprobs), latency of the successful
        attempt)``."""
        attempts = self.max_retries + 1
        last_error = ""
        waited = 0.0
        for attempt in range(attempts):
            batch.check_aborted(request.key)
            self._rate_limiter.acquire()
            try:
                return self._attempt(request, batch.session())
            except _RetryableError as exc:
                last_error = self._redact(str(exc))
                if attempt + 1 < attempts:
                    delay = self._retry_delay(request.key, attempt, last_error, exc.retry_after_s)
                    if waited + delay > self.max_retry_time_s:
                        raise JudgeRetriesExhaustedError(
                            request.key, attempt + 1, last_error,
                            f" (the next wait, {delay:.0f} s, would pass max_retry_time_s = {self.max_retry_time_s:g} s"
                            f" of retry waits)") from None
                    waited += delay
                    batch.abort.wait(delay)
        raise JudgeRetriesExhaustedError(request.key, attempts, last_error)

    def _retry_delay(self, key: str, attempt: int, reason: str, retry_after_s: float | None) -> float:
        """``Retry-After`` (capped) when the server gave one, otherwise exponential backoff with jitter."""
        if retry_after_s is not None:
            delay = min(retry_after_s, self.retry_after_max_s)
        else:
            delay = self.backoff_delay(attempt)
        logger.warning(
            "judge %s: request %r attempt %d failed (%s); retrying in %.2fs",
            self.judge_id, key, attempt + 1, reason, delay,
        )
        return delay

    def backoff_delay(self, attempt: int) -> float:
        """Equal-jitter exponential backoff: half of ``min(max, base * 2**attempt)`` fixed, half random."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        with self._rng_lock:
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # -- one HTTP attempt ----------------------------------------------------------------------------

    def _attempt(self, request: JudgeRequest, session: requests.Session) -> tuple[tuple[str, Any], float]:
        """POST once; classify the outcome as success, retryable, or fatal (``JudgeHTTPError``)."""
        sampling = request_sampling(self.sampling, request)
        body = {"model": self.judge_id, "messages": request.messages, **sampling}
        start = time.monotonic()
        try:
            # No redirects: the key goes to the configured endpoint only.
            response = session.post(self.endpoint, json=body, auth=self._auth, timeout=self.timeout_s,
                                    allow_redirects=False)
        except requests.Timeout as exc:
            raise _RetryableError(f"timeout after {self.timeout_s}s ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            raise _RetryableError(f"connection error ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # e.g. http.client's ValueError quoting the Authorization header
            raise JudgeRequestError(f"judge request {request.key!r} could not be sent: "
                                    + self._redact(f"{type(exc).__name__}: {exc}")) from None
        latency_s = time.monotonic() - start
        self._check_status(request.key, response)
        return self._parse_body(response, bool(sampling.get("logprobs"))), latency_s

    def _check_status(self, key: str, response: requests.Response) -> None:
        """Return on 2xx; raise ``_RetryableError`` on 408/429/5xx, ``JudgeHTTPError`` on other 4xx."""
        status = response.status_code
        if 300 <= status < CLIENT_ERROR_MIN:
            raise JudgeHTTPError(key, status, f"redirect to {response.headers.get('Location')!r} not followed (the "
                                              f"API key goes to the configured endpoint only); fix base_url")
        if status < CLIENT_ERROR_MIN:
            return
        body = self._redact(response.text[:ERROR_BODY_MAX_CHARS])
        if status in RETRYABLE_4XX or status >= SERVER_ERROR_MIN:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _RetryableError(f"HTTP {status}: {body}", retry_after)
        raise JudgeHTTPError(key, status, body)

    def _parse_body(self, response: requests.Response, logprobs: bool) -> tuple[str, Any]:
        """The completion text and, when asked for, the first token's top logprobs; a body that is not a
        well-formed chat completion is retryable."""
        try:
            payload = response.json()
            return extract_content(payload), extract_top_logprobs(payload) if logprobs else None
        except ValueError as exc:  # requests' JSONDecodeError is a ValueError too
            snippet = self._redact(response.text[:ERROR_BODY_MAX_CHARS])
            raise _RetryableError(f"malformed response ({exc}): {snippet!r}") from None

    def _redact(self, text: str) -> str:
        """Remove the API key (and its repr-escaped form) from text that may end up in logs or exceptions."""
        key = self._auth.api_key
        for form in {key, repr(key)[1:-1], key.encode("unicode_escape").decode()}:
            text = text.replace(form, REDACTED)
        return text


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer <key>``; passing it as ``auth=`` also stops requests applying ~/.netrc."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({REDACTED})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.api_key}"
        return request


class _Batch:
    """Per-``judge()`` state shared by its workers: an abort flag and one ``requests.Session`` per thread."""

    def __init__(self) -> None:
        self.abort = threading.Event()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()

    def check_aborted(self, key: str) -> None:
        """Stop a worker whose batch has already failed elsewhere."""
        if self.abort.is_set():
            raise BatchAbortedError(f"judge request {key!r} abandoned: another request in the batch failed")

    def session(self) -> requests.Session:
        """This thread's session (``requests.Session`` is not documented as thread-safe, so one per thread)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session
