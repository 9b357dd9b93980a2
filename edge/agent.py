"""The edge agent: source threads -> writer -> outbox -> uplink, plus the status loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.config import EdgeConfig
from edge.outbox import Outbox, Row
from edge.reader import Health, Item, SourceRunner, Stamper
from edge.rejects import Reject, RejectsLog
from edge.uplink import Uplink
from edge.writer import Writer
from firmware_bridge.base import Source

log = logging.getLogger("machi.edge")

SourceFactory = Callable[[dict[str, Any]], Source]


def default_factory(cfg: dict[str, Any]) -> Source:
    from firmware_bridge.registry import make_source

    return make_source(cfg)


class Agent:
    """Owns every thread; :meth:`run` blocks until :meth:`stop` (or a signal) is called."""

    def __init__(self, cfg: EdgeConfig, factory: SourceFactory = default_factory) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()  # stops the sources first
        self._writer_stop = threading.Event()  # then the writer, once they have handed over
        # Sources are built first: a config error surfaces before anything is opened.
        self.sources = [(spec, factory(spec.raw)) for spec in cfg.sources]
        self.outbox = Outbox(cfg.outbox_path, cfg.max_bytes, cfg.synchronous)
        self.health = {spec.name: Health() for spec in cfg.sources}
        self.inbox: queue.Queue[Item | Reject] = queue.Queue(maxsize=10_000)
        self.uplink = Uplink(cfg, self.outbox)
        self.writer = Writer(
            self.outbox,
            RejectsLog(cfg.rejects_path, cfg.rejects_max_bytes),
            self.inbox,
            self.health,
            cfg.batch_s,
            cfg.max_batch,
            self._on_commit,
            self._writer_stop,
        )
        stamper = Stamper()
        self.runners = [
            SourceRunner(spec, src, self.inbox, self.health[spec.name], stamper, self.stop_event)
            for spec, src in self.sources
        ]

    def _on_commit(self, rows: list[Row]) -> None:
        if rows:
            self.uplink.wake.set()

    def status_sources(self) -> dict[str, Any]:
        return {name: h.snapshot() for name, h in self.health.items()}

    def stop(self) -> None:
        self.stop_event.set()
        self.uplink.wake.set()

    def run(self) -> None:
        log.info(
            "edge agent starting",
            extra={
                "fields": {
                    "agent_id": self.cfg.agent_id,
                    "broker": self.uplink.url.redacted(),
                    "outbox": str(self.cfg.outbox_path),
                    "outbox_depth": self.outbox.depth,
                    "sources": [s.name for s in self.cfg.sources],
                }
            },
        )
        self.uplink.start()
        self.writer.start()
        for r in self.runners:
            r.start()
        next_status = 0.0
        try:
            while not self.stop_event.is_set():
                self.uplink.wake.wait(0.5)
                self.uplink.wake.clear()
                self.uplink.pump()
                now = time.monotonic()
                if now >= next_status and self.uplink.connected.is_set():
                    self.uplink.publish_status(self.uplink.status("online", self.status_sources()))
                    next_status = now + self.cfg.status_interval_s
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.stop_event.set()
        for r in self.runners:
            r.join(timeout=5)
        self._writer_stop.set()
        self.writer.join(timeout=10)
        self.uplink.pump()
        self.uplink.stop()
        self.outbox.close()
        log.info(
            "edge agent stopped",
            extra={
                "fields": {
                    "outbox_depth": self.outbox.depth,
                    "published": self.uplink.published,
                    "confirmed": self.uplink.confirmed,
                    "resent": self.uplink.resent,
                }
            },
        )
