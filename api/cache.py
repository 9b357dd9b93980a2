"""A small thread-safe TTL cache of computed KPI answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TtlCache"]


class TtlCache:
    """Answers kept for ``ttl_s`` seconds; at most ``max_entries`` (expired ones go first)."""

    def __init__(self, ttl_s: float, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any | None:
        """The cached value, or None when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def get_or_compute(self, key: Any, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """``(value, was_cached)``; ``compute`` runs outside the lock."""
        now = time.monotonic()
        if self.ttl_s > 0:
            with self._lock:
                hit = self._data.get(key)
                if hit is not None and hit[0] > now:
                    return hit[1], True
        value = compute()
        if self.ttl_s > 0:
            with self._lock:
                if len(self._data) >= self.max_entries:
                    self._data = {k: v for k, v in self._data.items() if v[0] > now}
                    if len(self._data) >= self.max_entries:
                        self._data.clear()
                self._data[key] = (now + self.ttl_s, value)
        return value, False
