"""The API's background writer of slot-boundary corrections (``api.boundaries``).

Every ``MACHI_API_BOUNDARY_S`` seconds (default 300) it recomputes each boundary b that
lies within the late-data hour (``rollups.LATE``, as the CQs recompute their intervals)
or after the newest *complete* marker (catch-up after downtime), at most
:data:`CATCH_UP` back. A boundary is complete at b + ``interp.GAP_MS`` (every reading
after b that counts is in); from :data:`api.boundaries.SETTLE_MS` after b until then it is stored
provisionally and recomputed each round, so the API rarely has to compute the newest
boundary live (two statements over every meter). Data later than the hour: ``machi api
rollup``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from api import boundaries, interp, rollups
from contract.influx import InfluxV1
from contract.periodic import Periodic

log = logging.getLogger("machi.api.boundaries")

#: How far back a catch-up reaches when the newest marker is older (or none exists):
#: the longest window the API answers.
CATCH_UP = timedelta(days=31)
#: Boundaries per round of a catch-up between checks for a stop (a day).
CHUNK = 48


class BoundaryWriter(Periodic):
    """Keeps ``machi_rollup.energy_boundary*`` up to date from the API process."""

    name = "boundary-writer"
    failure_message = "writing slot-boundary corrections failed; retrying next round"

    def __init__(
        self,
        influx: InfluxV1,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the boundary interval must be positive (0 disables the writer)")
        super().__init__(interval_s, log)
        self.influx = influx
        self.clock = clock
        self.written = 0

    def due(self) -> list[int]:
        """The boundaries this round computes, oldest first."""
        now_ms = int(self.clock() * 1000)
        newest = now_ms - boundaries.SETTLE_MS
        late = now_ms - interp.GAP_MS - int(rollups.LATE.total_seconds() * 1000)
        last = boundaries.last_mark(self.influx, complete=True)
        floor = newest - int(CATCH_UP.total_seconds() * 1000)
        lo = floor if last is None else max(floor, min(late, last + 1))
        return boundaries.grid(lo, newest)

    def refresh(self) -> int:
        """One round: compute and store the due boundaries; return points written."""
        t0 = time.monotonic()
        if not rollups.installed(self.influx):
            # No machi_rollup policy (MACHI_API_ROLLUPS off, or not set up yet): nothing to
            # write into; the API interpolates a few boundaries live instead.
            self.rounds += 1
            return 0
        now_ms = int(self.clock() * 1000)
        due = self.due()
        written = 0
        for i in range(0, len(due), CHUNK):
            if self._stop.is_set():
                break
            chunk = due[i : i + CHUNK]
            written += boundaries.fill(
                self.influx, chunk[0], chunk[-1], now_ms, boundaries.SETTLE_MS
            )
        self.written += written
        self.rounds += 1
        self.last_round_s = time.monotonic() - t0
        return written
