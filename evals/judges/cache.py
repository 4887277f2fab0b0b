"""Append-only on-disk cache of judge answers, one JSON object per line, keyed by ``prompt_hash``.

Each line is ``{"prompt_hash", "judge_id", "text", "latency_s", "timestamp"}`` and nothing else: no API key,
no header, no request body. Every ``put`` writes one whole line, flushes and fsyncs it, so a crash loses at
most the line being written. On load, an unterminated last line that does not parse (an interrupted write) is
ignored with a warning and cut off before the next append; any other corrupt line raises
:class:`CacheCorruptError` naming the file and the 1-based line number. Later lines for the same key win.

One process should write a given cache file at a time; threads within it may share one ``JudgeCache``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_NEWLINE = b"\n"
_REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "prompt_hash": (str,),
    "text": (str,),
    "latency_s": (int, float),
    "timestamp": (str,),
}


class CacheCorruptError(ValueError):
    """A cache line other than a truncated last line could not be read."""

    def __init__(self, path: Path, line_no: int, reason: str) -> None:
        super().__init__(f"corrupt judge cache {path}, line {line_no}: {reason}")
        self.path = path
        self.line_no = line_no


@dataclass(frozen=True)
class CacheEntry:
    """One cached judge answer."""

    prompt_hash: str
    judge_id: str
    text: str
    latency_s: float
    timestamp: str
    top_logprobs: list[dict[str, Any]] | None = None   # only for calls that asked for logprobs


def _parse_entry(raw: bytes) -> CacheEntry:
    """Decode one cache line; raises ``ValueError`` describing what is wrong with it."""
    obj: Any = json.loads(raw.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    for name, types in _REQUIRED_FIELDS.items():
        if not isinstance(obj.get(name), types) or isinstance(obj.get(name), bool):
            raise ValueError(f"field {name!r} missing or not {'/'.join(t.__name__ for t in types)}")
    return CacheEntry(
        prompt_hash=obj["prompt_hash"],
        judge_id=str(obj.get("judge_id", "")),
        text=obj["text"],
        latency_s=float(obj["latency_s"]),
        timestamp=obj["timestamp"],
        top_logprobs=obj.get("top_logprobs"),
    )


def _serialise(entry: CacheEntry) -> bytes:
    """One cache line, newline-terminated."""
    obj = {
        "prompt_hash": entry.prompt_hash,
        "judge_id": entry.judge_id,
        "text": entry.text,
        "latency_s": entry.latency_s,
        "timestamp": entry.timestamp,
    }
    if entry.top_logprobs is not None:
        obj["top_logprobs"] = entry.top_logprobs
    return json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8") + _NEWLINE


class JudgeCache:
    """Thread-safe append-only JSONL cache: ``get(prompt_hash)`` / ``put(prompt_hash, text, latency_s)``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}
        # Byte offset of a torn (unparseable, unterminated) last line, cut off before the first append.
        self._torn_tail_at: int | None = None
        # True when the file's last line parsed but lacks its newline; one is added before the first append.
        self._needs_newline = False
        self._load()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, prompt_hash: object) -> bool:
        with self._lock:
            return prompt_hash in self._entries

    def get(self, prompt_hash: str) -> CacheEntry | None:
        """The cached answer for ``prompt_hash``, or ``None``."""
        with self._lock:
            return self._entries.get(prompt_hash)

    def put(self, prompt_hash: str, text: str, latency_s: float, judge_id: str = "",
            top_logprobs: list[dict[str, Any]] | None = None) -> CacheEntry:
        """Record an answer: append one line, flush and fsync it, then make it visible to ``get``."""
        entry = CacheEntry(
            prompt_hash=prompt_hash,
            judge_id=judge_id,
            text=text,
            latency_s=float(latency_s),
            timestamp=datetime.now(timezone.utc).isoformat(),
            top_logprobs=top_logprobs,
        )
        line = _serialise(entry)
        with self._lock:
            self._repair_tail()
            self._append(line)
            self._entries[prompt_hash] = entry
        return entry

    # -- loading -------------------------------------------------------------------------------------

    def _load(self) -> None:
        """Read every line of an existing cache file into memory."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(_NEWLINE)
        tail = lines.pop()  # text after the final newline: b"" for a well-formed file
        offset = 0
        for line_no, raw in enumerate(lines, start=1):
            self._load_line(raw, line_no)
            offset += len(raw) + len(_NEWLINE)
        if tail:
            self._load_tail(tail, line_no=len(lines) + 1, offset=offset)

    def _load_line(self, raw: bytes, line_no: int) -> None:
        """Load one newline-terminated line; blank lines are skipped, bad ones raise."""
        if not raw.strip():
            return
        try:
            entry = _parse_entry(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CacheCorruptError(self.path, line_no, str(exc)) from exc
        self._entries[entry.prompt_hash] = entry

    def _load_tail(self, tail: bytes, line_no: int, offset: int) -> None:
        """Load an unterminated last line; if it does not parse, it is a torn write and is ignored."""
        try:
            entry = _parse_entry(tail)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.warning(
                "judge cache %s: ignoring truncated last line %d (%s); it will be cut off before the next write",
                self.path,
                line_no,
                exc,
            )
            self._torn_tail_at = offset
            return
        self._entries[entry.prompt_hash] = entry
        self._needs_newline = True

    # -- writing -------------------------------------------------------------------------------------

    def _repair_tail(self) -> None:
        """Before the first append: drop a torn last line, or terminate an unterminated good one."""
        if self._torn_tail_at is not None:
            os.truncate(self.path, self._torn_tail_at)
            self._torn_tail_at = None
        if self._needs_newline:
            self._append(_NEWLINE)
            self._needs_newline = False

    def _append(self, data: bytes) -> None:
        """Append bytes durably (single write, flush, fsync)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
