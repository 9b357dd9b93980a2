"""The single writer: batches readings per device and commits them to the outbox.

A batch closes at ``max_batch`` readings or ``batch_s`` seconds after its first reading;
all batches due at that moment go into one transaction (one fsync). A reading is
counted as read only once that transaction has committed. Rejects go to the rejects
file and their per-reason counters are bumped in the same transaction.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.outbox import Batch, Outbox, OutboxError, Row
from edge.reader import Health, Item
from edge.rejects import Reject, RejectsLog

log = logging.getLogger("machi.edge.writer")


@dataclass
class _Open:
    opened: float
    readings: list[dict[str, Any]] = field(default_factory=list)
    by_source: dict[str, int] = field(default_factory=dict)


class Writer(threading.Thread):
    def __init__(
        self,
        outbox: Outbox,
        rejects: RejectsLog,
        inbox: queue.Queue[Item | Reject],
        health: dict[str, Health],
        batch_s: float,
        max_batch: int,
        on_commit: Callable[[list[Row]], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name="outbox-writer", daemon=True)
        self.outbox = outbox
        self.rejects = rejects
        self.inbox = inbox
        self.health = health
        self.batch_s = batch_s
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.stop_event = stop
        self._open: dict[tuple[str, str, str], _Open] = {}
        self._rejects: list[Reject] = []
        self._rejects_since = 0.0
        self.drained = threading.Event()

    def _add(self, item: Item | Reject, now: float) -> None:
        if isinstance(item, Reject):
            if not self._rejects:
                self._rejects_since = now
            self._rejects.append(item)
            return
        key = (item.kind, item.device_id, item.site)
        b = self._open.get(key)
        if b is None:
            b = self._open[key] = _Open(opened=now)
        b.readings.append(item.reading)
        b.by_source[item.source] = b.by_source.get(item.source, 0) + 1

    def _due(self, now: float, everything: bool) -> list[tuple[str, str, str]]:
        return [
            k
            for k, b in self._open.items()
            if everything or len(b.readings) >= self.max_batch or now - b.opened >= self.batch_s
        ]

    def _flush(self, now: float, everything: bool = False) -> bool:
        keys = self._due(now, everything)
        rejects_due = self._rejects and (everything or now - self._rejects_since >= self.batch_s)
        if not keys and not rejects_due:
            return True
        batches = []
        for k in keys:
            b = self._open[k]
            # A batch can hold more than max_batch when a source returned many at once.
            for i in range(0, len(b.readings), self.max_batch):
                batches.append(Batch(k[0], k[1], k[2], b.readings[i : i + self.max_batch]))
        rejects = self._rejects if rejects_due else []
        counts: dict[str, int] = {}
        for r in rejects:
            counts[f"rejects.{r.reason}"] = counts.get(f"rejects.{r.reason}", 0) + 1
        try:
            # File first: a crash in between re-counts nothing and loses no raw bytes.
            self.rejects.write(rejects)
            rows = self.outbox.commit(batches, counts)
        except (OutboxError, sqlite3.Error, OSError) as exc:
            log.error(
                "cannot write the outbox; keeping readings in memory and retrying",
                extra={"fields": {"error": str(exc)}},
            )
            return False
        for k in keys:
            for src, n in self._open.pop(k).by_source.items():
                h = self.health.get(src)
                if h is not None:
                    with h.lock:
                        h.readings += n
        if rejects_due:
            self._rejects = []
        self.on_commit(rows)
        return True

    def _next_deadline(self, now: float) -> float:
        times = [b.opened + self.batch_s for b in self._open.values()]
        if self._rejects:
            times.append(self._rejects_since + self.batch_s)
        return max(0.0, min(times) - now) if times else 0.5

    def run(self) -> None:
        retry_at = 0.0
        while True:
            now = time.monotonic()
            stopping = self.stop_event.is_set()
            try:
                item = self.inbox.get(timeout=0.05 if stopping else self._next_deadline(now))
                self._add(item, time.monotonic())
                # Take what is already queued without waiting, then flush once.
                while True:
                    self._add(self.inbox.get_nowait(), time.monotonic())
            except queue.Empty:
                pass
            now = time.monotonic()
            if stopping and self.inbox.empty():
                for _ in range(3):  # the disk may be briefly unavailable at shutdown
                    if self._flush(now, everything=True):
                        break
                    time.sleep(0.5)
                self.drained.set()
                return
            if now >= retry_at and not self._flush(now):
                retry_at = now + 1.0
