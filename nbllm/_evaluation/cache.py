"""The evaluation cache: finished answers on disk, so a re-run resumes instead of re-calling.

One sqlite3 file (stdlib; WAL; one row per key). The key is a SHA-256 over what determines the
answer: the endpoint's request-shaping configuration (URL, model, type, body fields/template,
headers, message keys, response paths, handler, default params; not its name, key, timeout,
retries or prices), the messages, the call's params and the repeat index. Keys are hashes, so
nothing secret is stored; values hold the answer and its measurements only.

Only successful answers are stored: an error is never cached as an answer, so a re-run calls
errored rows again. Writes are batched and committed by ``flush()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._core.endpoint import Endpoint
from .._core.fields import not_in_cache_key

__all__ = ["Cache", "default_cache_path", "endpoint_fingerprint", "request_key"]

# Endpoint fields that do not change the answer (or are secret): left out of the key. Read from
# the field table (FieldSpec.in_cache_key), so a new field is in the key unless it says otherwise.
_NOT_IN_KEY = not_in_cache_key()
_SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)"


def default_cache_path() -> Path:
    """``eval-cache.sqlite3`` in the nbllm config directory (follows ``NBLLM_CONFIG_DIR``)."""
    from .._io.registry import config_dir

    return config_dir() / "eval-cache.sqlite3"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def endpoint_fingerprint(ep: Endpoint) -> str:
    """A short hash of the endpoint fields that shape the request and read the answer."""
    cfg = {k: v for k, v in ep.to_dict().items() if k not in _NOT_IN_KEY}
    cfg["request_url"] = ep.request_url
    cfg["model"] = ep.model_name
    return hashlib.sha256(_dumps(cfg).encode()).hexdigest()[:32]


def request_key(
    fingerprint: str, prompt: Any, system: str | None, params: Mapping[str, Any], repeat: int
) -> str:
    payload = _dumps([fingerprint, prompt, system, dict(params), repeat])
    return hashlib.sha256(payload.encode()).hexdigest()


class Cache:
    """Finished answers keyed by ``request_key``. Thread-safe; one connection per Cache."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        p = Path(path).expanduser() if path is not None else default_cache_path()
        if p.is_dir():
            p = p / "eval-cache.sqlite3"
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path = p
        self._lock = threading.Lock()
        self._closed = False
        self._pending: list[tuple[str, str, float]] = []
        self._db = sqlite3.connect(str(p), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored answers for those of ``keys`` that have one."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            if self._closed:
                return found
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", part)
                for key, value in rows:
                    found[key] = json.loads(value)
        return found

    def put(self, key: str, value: Mapping[str, Any]) -> int:
        """Queue an answer; it is written by the next ``flush()``. Returns how many wait."""
        with self._lock:
            self._pending.append((key, json.dumps(dict(value), ensure_ascii=False), time.time()))
            return len(self._pending)

    def flush(self) -> int:
        """Write the queued answers in one transaction; returns how many."""
        with self._lock:
            pending, self._pending = self._pending, []
            if pending and not self._closed:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", pending)
                self._db.execute("COMMIT")
            return len(pending)

    def __bool__(self) -> bool:  # an empty cache is still a cache
        return True

    def __len__(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def clear(self) -> None:
        """Forget every stored answer."""
        with self._lock:
            self._pending.clear()
            self._db.execute("DELETE FROM answers")

    def close(self) -> None:
        """Write what is queued and close the file (later writes are dropped)."""
        self.flush()
        with self._lock:
            self._closed = True
            self._db.close()

    def __repr__(self) -> str:
        return f"<nbllm eval Cache {self.path}>"
