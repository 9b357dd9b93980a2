"""A background round on a daemon thread: the one loop behind every refresher.

A refresher recomputes something (KPI answers, the residents' snapshot) every few
seconds and serves the last good result; a failed round is counted and logged, and the
previous result stays in service.
"""

from __future__ import annotations

import logging
import threading

import httpx

from contract.influx import InfluxError

__all__ = ["Periodic"]


class Periodic:
    """Subclasses implement :meth:`refresh` (one round, which updates ``rounds`` and
    ``last_round_s``) and may override :meth:`pause`."""

    #: Thread name, and the log line of a failed round.
    name = "periodic"
    failure_message = "refresh failed; serving the previous result"

    def __init__(self, interval_s: float, log: logging.Logger) -> None:
        self.interval_s = interval_s
        self.log = log
        self.rounds = 0
        self.failures = 0
        self.last_round_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> object:
        raise NotImplementedError

    def pause(self) -> float:
        """Seconds to wait after a round (default: the interval)."""
        return self.interval_s

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except (InfluxError, httpx.HTTPError) as exc:
                self.failures += 1
                self.log.warning(self.failure_message, extra={"fields": {"error": str(exc)}})
            self._stop.wait(self.pause())
