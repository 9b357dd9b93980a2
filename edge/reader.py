"""One thread per source: read, timestamp, validate against the contract, hand over.

A source that fails (``DeviceError`` or any bug in a driver) is closed and reopened with
exponential backoff; it never takes the other sources down with it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from contract.ids import ID_RE
from contract.schema import Rejected, decode_message, encode_message, make_message
from contract.status import SourceHealth
from edge.config import SourceSpec
from edge.rejects import Reject
from firmware_bridge.base import DeviceError, Source

log = logging.getLogger("machi.edge.reader")

#: 2024-01-01T00:00Z. A clock before this has not been set yet (a Pi has no RTC and
#: boots with a stale time until NTP answers); stamping with it would write garbage.
MIN_PLAUSIBLE_MS = 1_704_067_200_000
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class Item:
    """A validated reading for the writer."""

    source: str
    kind: str
    device_id: str
    site: str
    reading: dict[str, Any]


@dataclass
class Health:
    """Per-source counters, shared between the source thread, the writer and the status."""

    healthy: bool = False
    readings: int = 0  # committed to the outbox (counted by the writer)
    rejects: int = 0
    failures: int = 0
    last_ok_ms: int | None = None
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> SourceHealth:
        with self.lock:
            return SourceHealth(
                healthy=self.healthy,
                readings=self.readings,
                errors=self.rejects + self.failures,
                last_ok_ms=self.last_ok_ms,
                last_error=self.last_error,
            )


class Stamper:
    """UTC epoch-ms timestamps, strictly increasing per device.

    Two readings of one device in the same millisecond would be one InfluxDB point (same
    series, same time); bumping the later one by 1 ms keeps both.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def stamp(self, device_id: str, now_ms: int) -> int:
        with self._lock:
            last = self._last.get(device_id, 0)
            # A clock stepped back by more than a second (NTP) is followed, not glued.
            t = last + 1 if now_ms <= last < now_ms + 1000 else now_ms
            self._last[device_id] = t
            return t


def normalise(
    raw: dict[str, Any], spec: SourceSpec, kind: str, now_ms: int, stamper: Stamper
) -> Item | Reject:
    """Turn a driver's reading dict into a contract reading, or a reject with the reason."""

    def reject(reason: str, detail: str) -> Reject:
        data = json.dumps(raw, default=repr, sort_keys=True).encode("utf-8", "replace")
        return Reject(now_ms, spec.name, reason, detail, data)

    if not isinstance(raw, dict):
        return reject("schema", f"a reading must be a dict, got {type(raw).__name__}")
    r = dict(raw)
    device_id = r.pop("device_id", None) or spec.device_id
    site = r.pop("site", None) or spec.site
    if not isinstance(device_id, str) or not ID_RE.match(device_id):
        return reject("bad_device_id", f"device_id {device_id!r} is missing or invalid")
    if not isinstance(site, str) or not ID_RE.match(site):
        return reject("bad_site", f"site {site!r} is invalid")
    if "t" not in r:
        if now_ms < MIN_PLAUSIBLE_MS:
            return reject("clock_unsynced", f"system clock reads {now_ms} ms; wait for NTP")
        r["t"] = stamper.stamp(device_id, now_ms)
    try:
        msg = make_message(kind, device_id, site, 0, [r])
        # The full receiver-side check (time window, wearable needs a measurement).
        decode_message(kind, device_id, encode_message(msg), now_ms)
    except Rejected as exc:
        return reject(exc.reason.value, exc.detail)
    except (ValueError, KeyError) as exc:
        return reject("schema", str(exc))
    return Item(spec.name, kind, device_id, site, r)


class SourceRunner(threading.Thread):
    """Drives one :class:`Source` until ``stop`` is set."""

    def __init__(
        self,
        spec: SourceSpec,
        source: Source,
        sink: queue.Queue[Item | Reject],
        health: Health,
        stamper: Stamper,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"source-{spec.name}", daemon=True)
        self.spec = spec
        self.source = source
        self.sink = sink
        self.health = health
        self.stamper = stamper
        self.stop_event = stop

    def _put(self, item: Item | Reject) -> None:
        # Blocks when the writer is behind (disk stalled): back-pressure, not loss in memory.
        while True:
            try:
                self.sink.put(item, timeout=0.5)
                return
            except queue.Full:
                if self.stop_event.is_set():
                    log.error("writer stalled at shutdown; a reading was not stored")
                    return

    def _fail(self, exc: BaseException) -> None:
        with self.health.lock:
            self.health.healthy = False
            self.health.failures += 1
            self.health.last_error = f"{type(exc).__name__}: {exc}"[:300]
        try:
            self.source.close()
        except Exception:  # noqa: BLE001 - a broken driver must not kill the thread
            log.exception("closing source failed", extra={"fields": {"source": self.spec.name}})

    def run(self) -> None:
        backoff = 1.0
        opened = False
        name = self.spec.name
        while not self.stop_event.is_set():
            try:
                if not opened:
                    self.source.open()
                    opened = True
                    log.info("source open", extra={"fields": {"source": name}})
                    with self.health.lock:
                        self.health.healthy = True
                readings = self.source.read()
                rejected = self.source.take_rejects()
            except Exception as exc:
                opened = False
                level = logging.WARNING if isinstance(exc, DeviceError) else logging.ERROR
                log.log(
                    level,
                    "source failed; reopening in %.0f s",
                    backoff,
                    exc_info=not isinstance(exc, DeviceError),
                    extra={"fields": {"source": name, "error": str(exc)[:300]}},
                )
                self._fail(exc)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = 1.0
            now_ms = int(time.time() * 1000)
            n_bad = 0
            for reason, raw in rejected:
                n_bad += 1
                self._put(Reject(now_ms, name, str(reason), "rejected by the driver", raw))
            for raw_reading in readings:
                item = normalise(raw_reading, self.spec, self.source.kind, now_ms, self.stamper)
                if isinstance(item, Reject):
                    n_bad += 1
                self._put(item)
            with self.health.lock:
                self.health.healthy = True
                self.health.rejects += n_bad
                if readings:
                    self.health.last_ok_ms = now_ms
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            log.exception("closing source failed", extra={"fields": {"source": name}})
