"""Fault-suite plumbing: an at-least-once test publisher, a fleet stream, ingest workers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from contract.settings import Settings
from machi.servers import IngestProcess, Mosquitto
from machi.simulate import Fleet
from machi.testkit import Publisher
from tests.faults.accounting import Ledger


class Stream:
    """A fleet publishing ``rounds`` rounds (one message per device each) in a thread.

    Readings lie in the recent past, ``per_message`` per message 100 ms apart; every
    message is recorded in ``ledger`` before it is published.
    """

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        rounds: int,
        pause_s: float,
        per_message: int = 10,
        devices: tuple[int, int, int] = (8, 6, 4),
        name: str = "pub",
    ) -> None:
        self.settings, self.ledger, self.rounds, self.pause_s = settings, ledger, rounds, pause_s
        self.per_message = per_message
        meters, wearables, buses = devices
        self.fleet = Fleet.build(meters, wearables, buses, seed=7, prefix=f"{name}-")
        self.client_id = f"{name}-{settings.topic_prefix}"
        self.publisher: Publisher | None = None
        self.error: BaseException | None = None
        self.halt = threading.Event()  # set to end the stream after the current round
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Stream:
        self.publisher = Publisher(self.settings, self.client_id)
        self.thread.start()
        return self

    def _run(self) -> None:
        assert self.publisher is not None
        try:
            span = self.per_message * 100
            t0 = time.time_ns() // 1_000_000 - self.rounds * span - 60_000
            for i in range(self.rounds):
                if self.halt.is_set():
                    break
                for msg in self.fleet.messages(t0 + i * span, 0.1, self.per_message):
                    self.ledger.add_message(msg)
                    self.publisher.publish(msg)
                time.sleep(self.pause_s)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float = 120.0) -> None:
        """Wait until every message is published and acknowledged by the broker."""
        assert self.publisher is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "publisher still running"
        assert self.error is None, f"publisher failed: {self.error!r}"
        assert self.publisher.flush(timeout), f"{self.publisher.unacked} messages never acked"
        self.publisher.close()

    @property
    def expected(self) -> int:
        return self.rounds * len(self.fleet.devices) * self.per_message


def ingest(tmp: Path, name: str, mqtt_url: str, influx_url: str, s: Settings) -> IngestProcess:
    """A ``machi ingest`` subprocess with a fixed client id (persistent session)."""
    return IngestProcess(
        tmp / name, mqtt_url, influx_url, s.influx_db, s.topic_prefix,
        client_id=f"{name}-{s.topic_prefix}", extra_args=["--batch-seconds", "0.3"],
        open_mode=True,
    )  # fmt: skip


def save_id(mq: Mosquitto) -> tuple[int, int] | None:
    """Identity of mosquitto's persistence file: it changes with every save."""
    try:
        st = os.stat(mq.workdir / "data" / "mosquitto.db")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class SaveWatcher:
    """Notes (monotonic time) each time mosquitto replaces its persistence file."""

    def __init__(self, mq: Mosquitto) -> None:
        self.mq = mq
        self.saves: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = save_id(self.mq)
        while not self._stop.wait(0.02):
            now = save_id(self.mq)
            if now is not None and now != last:
                self.saves.append(time.monotonic())
                last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
