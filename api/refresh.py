"""Background refresher: the default KPI answers (last 24 h), recomputed every N seconds.

Most requests ask for the default window (the last 24 h, city-wide or one site). A
day of InfluxQL can take longer than the latency target on small machines, so one
thread recomputes every theme for the city and for each site every ``interval_s``
seconds (``MACHI_API_REFRESH_S``) and the routes serve those answers from memory. The
window ends at the start of the round, rounded down to the interval: an answer is at
most ~2 intervals old. Explicit ``start``/``end`` requests are still computed on demand.
Public care answers cover the newest complete tile of the public grid
(``contract.disclosure``); care-scope answers (``CARE_SCOPE``) the last 24 h at the care
scope's k.

A round is published only when every answer in it was computed, so all themes of one
snapshot share one window. When InfluxDB fails, the last snapshot is served until it is
``3 x interval_s`` old; after that requests compute again (and get InfluxDB's error).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.kpis import THEMES, KpiEngine, Window
from contract.periodic import Periodic

log = logging.getLogger("machi.api.refresh")

DEFAULT_SPAN = timedelta(hours=24)
#: Key of the care-scope default answers (public care answers are under "care").
CARE_SCOPE = "care/care-scope"


@dataclass(frozen=True)
class Snapshot:
    end: datetime
    made: float  # time.monotonic() when published
    answers: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)


class Refresher(Periodic):
    """Recomputes the default answers on a daemon thread; ``get`` serves them."""

    name = "kpi-refresher"
    failure_message = "KPI refresh failed; serving the previous answers while they are fresh"

    def __init__(
        self,
        engine: KpiEngine,
        sites: Callable[[], list[str]],
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the refresh interval must be positive (0 disables the refresher)")
        super().__init__(interval_s, log)
        self.engine = engine
        self.sites = sites
        self.clock = clock
        self._snapshot: Snapshot | None = None

    def pause(self) -> float:
        # Sleep to the next interval boundary so rounds line up with window ends.
        now = self.clock()
        return max(0.5, self.interval_s - now % self.interval_s)

    def refresh(self) -> Snapshot:
        """Compute one round now and publish it; return it."""
        t0 = time.monotonic()
        now = self.clock()
        end = datetime.fromtimestamp(now - now % self.interval_s, UTC)
        answers: dict[tuple[str, str | None], dict[str, Any]] = {}
        # Public care figures exist only for whole grid tiles: the newest complete one.
        tile = self.engine.policy.last_tile(end)
        for site in [None, *self.sites()]:
            w = Window(end - DEFAULT_SPAN, end, site)
            for theme in THEMES:
                tw = Window(*tile, site) if theme == "care" else w
                answers[(theme, site)] = self.engine.theme(theme, tw).as_dict()
            # Care/operator keys get the last 24 h at their own k (CARE_SCOPE).
            answers[(CARE_SCOPE, site)] = self.engine.theme("care", w, public=False).as_dict()
        snap = Snapshot(end, time.monotonic(), answers)
        self._snapshot = snap  # one reference swap: readers see a whole round or the old one
        self.rounds += 1
        self.last_round_s = time.monotonic() - t0
        return snap

    def _fresh(self) -> Snapshot | None:
        snap = self._snapshot
        if snap is None or time.monotonic() - snap.made > 3 * self.interval_s:
            return None
        return snap

    def get(self, theme: str, site: str | None) -> dict[str, Any] | None:
        """The refreshed default answer, or None (not computed yet, unknown site, stale)."""
        snap = self._fresh()
        return None if snap is None else snap.answers.get((theme, site))

    def get_all(self, site: str | None) -> tuple[datetime, list[dict[str, Any]]] | None:
        """Every theme's refreshed default answer, all from one round (one window)."""
        snap = self._fresh()
        if snap is None or (THEMES[0], site) not in snap.answers:
            return None
        return snap.end, [snap.answers[(t, site)] for t in THEMES]

    @property
    def end(self) -> datetime | None:
        snap = self._snapshot
        return None if snap is None else snap.end
