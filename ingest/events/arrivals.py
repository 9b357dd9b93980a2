"""Bus stop arrivals from GPS fixes, matched against the GTFS static schedule.

Matching rule:

1. Candidate trips: the fix's ``trip_id`` if the schedule knows it, else every trip of
   its ``route_id``.
2. The fix is *at* a stop when it lies within ``radius_m`` (default 50 m) of a stop on a
   candidate trip (the nearest one if several).
3. The first fix of each stop visit is the arrival; the visit lasts until a fix is
   outside the radius. After a restart, an arrival at the same (bus, stop) within
   ``revisit_s`` (default 300 s) of the last stored one counts as the same visit.
4. Scheduled time: the candidate trip's ``arrival_time`` at that stop on a service
   day (the fix's date or the day before, in the agency's time zone: times past
   24:00:00 belong to the day before) **on which the trip runs** (GTFS calendar: its
   ``service_id`` active that day, see :mod:`ingest.events.gtfs`), closest to the fix;
   with only a route, the closest such trip within ``max_route_delay_s`` (default
   1800 s) is chosen.
   ``delay_s`` = observed - scheduled (positive = late).
5. Headway: ``headway_s`` = this arrival minus the previous arrival of *any* bus of the
   same route at the same stop (none for the first one known). An arrival processed out
   of order (a bus draining its outbox late) also corrects the headway of the arrival
   that follows it: the same point (tags + time) is written again with the new
   ``headway_s``, which InfluxDB merges into it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contract.events import BUS_ARRIVAL
from contract.lineprotocol import line
from contract.schema import BusReading
from ingest.events.gtfs import Schedule, distance_m


@dataclass(frozen=True)
class Arrival:
    device_id: str
    route_id: str
    site: str
    stop_id: str
    trip_id: str
    t: int
    scheduled_ms: int
    headway_s: float | None = None  # None: no earlier arrival of the route at the stop known
    corrects: HeadwayFix | None = None  # the next arrival's headway, changed by this one

    @property
    def delay_s(self) -> float:
        return (self.t - self.scheduled_ms) / 1000.0

    def tags(self) -> dict[str, str]:
        return {
            "device_id": self.device_id,
            "route_id": self.route_id,
            "site": self.site,
            "stop_id": self.stop_id,
        }

    def line(self) -> str:
        fields: dict[str, float | int | str | None] = {
            "delay_s": self.delay_s,
            "trip_id": self.trip_id,
            "scheduled_ms": self.scheduled_ms,
        }
        if self.headway_s is not None:
            fields["headway_s"] = self.headway_s
        return line(BUS_ARRIVAL, self.tags(), fields, self.t)

    def lines(self) -> list[str]:
        """This arrival's point, then the correction of the next arrival's headway if any."""
        return [self.line()] if self.corrects is None else [self.line(), self.corrects.line()]


@dataclass(frozen=True)
class Passing:
    """One stored arrival at a (route, stop): enough to rewrite its ``headway_s``."""

    t: int
    device_id: str
    site: str


@dataclass(frozen=True)
class HeadwayFix:
    """A new ``headway_s`` for an already stored arrival (same series and time: a merge)."""

    route_id: str
    stop_id: str
    passing: Passing
    headway_s: float

    def line(self) -> str:
        tags = {
            "device_id": self.passing.device_id,
            "route_id": self.route_id,
            "site": self.passing.site,
            "stop_id": self.stop_id,
        }
        return line(BUS_ARRIVAL, tags, {"headway_s": self.headway_s}, self.passing.t)


class Headways:
    """Recent arrivals per (route, stop), in time order, to measure headways at the source.

    Only arrivals up to ``keep_s`` older than the newest one of their (route, stop) are
    kept (the KPI ignores longer gaps anyway); the newest is always kept, so the first
    arrival after a night still gets its (long) headway.
    """

    def __init__(self, keep_s: float = 7200.0) -> None:
        self.keep_ms = int(keep_s * 1000)
        self._seen: dict[tuple[str, str], list[Passing]] = {}

    def add(
        self, route_id: str, stop_id: str, p: Passing
    ) -> tuple[float | None, HeadwayFix | None]:
        """Record ``p``; return its headway and the fix of the next arrival's headway."""
        seen = self._seen.setdefault((route_id, stop_id), [])
        i = bisect.bisect_left(seen, (p.t, p.device_id), key=lambda q: (q.t, q.device_id))
        if i < len(seen) and (seen[i].t, seen[i].device_id) == (p.t, p.device_id):
            prev = seen[i - 1].t if i > 0 else None  # already known (restored): idempotent
            return (None if prev is None else (p.t - prev) / 1000.0), None
        seen.insert(i, p)
        headway = None if i == 0 else (p.t - seen[i - 1].t) / 1000.0
        fix = None
        if i + 1 < len(seen):
            nxt = seen[i + 1]
            fix = HeadwayFix(route_id, stop_id, nxt, (nxt.t - p.t) / 1000.0)
        cutoff = seen[-1].t - self.keep_ms
        drop = bisect.bisect_left(seen, cutoff, key=lambda q: q.t)
        del seen[: min(drop, len(seen) - 1)]
        return headway, fix


@dataclass
class _Bus:
    last_t: int = -1
    at_stop: str | None = None
    last_arrival: dict[str, int] = field(default_factory=dict)


class ArrivalMatcher:
    def __init__(
        self,
        schedule: Schedule,
        radius_m: float = 50.0,
        revisit_s: float = 300.0,
        max_route_delay_s: float = 1800.0,
    ) -> None:
        self.schedule = schedule
        self.radius_m = radius_m
        self.revisit_ms = revisit_s * 1000
        self.max_route_delay_ms = max_route_delay_s * 1000
        self.buses: dict[str, _Bus] = {}
        self.headways = Headways()
        self.unmatched = 0  # fixes whose route/trip the schedule does not know

    def restore(self, device_id: str, route_id: str, site: str, stop_id: str, t: int) -> None:
        """Feed one stored arrival back (after a restart): visits and headways go on."""
        bus = self.buses.setdefault(device_id, _Bus())
        bus.last_arrival[stop_id] = max(t, bus.last_arrival.get(stop_id, -1))
        self.headways.add(route_id, stop_id, Passing(t, device_id, site))

    def process(self, device_id: str, site: str, fixes: list[BusReading]) -> list[Arrival]:
        bus = self.buses.setdefault(device_id, _Bus())
        out = []
        for fix in sorted(fixes, key=lambda f: f.t):
            if fix.t <= bus.last_t:
                continue  # redelivered: already matched
            bus.last_t = fix.t
            arrival = self._match(bus, device_id, site, fix)
            if arrival is not None:
                out.append(arrival)
        return out

    def _candidates(self, fix: BusReading) -> tuple[list[str], bool]:
        if fix.trip_id and fix.trip_id in self.schedule.trips:
            return [fix.trip_id], True
        return self.schedule.routes.get(fix.route_id, []), False

    def _match(self, bus: _Bus, device_id: str, site: str, fix: BusReading) -> Arrival | None:
        trips, exact = self._candidates(fix)
        if not trips:
            self.unmatched += 1
            return None
        stop_ids = {s for tid in trips for s, _ in self.schedule.trips[tid].stop_times}
        best, best_d = None, self.radius_m
        for sid in stop_ids:
            st = self.schedule.stops[sid]
            d = distance_m(fix.lat, fix.lon, st.lat, st.lon)
            if d <= best_d:
                best, best_d = sid, d
        if best is None:
            bus.at_stop = None
            return None
        if bus.at_stop == best:
            return None  # still the same visit
        bus.at_stop = best
        prev = bus.last_arrival.get(best)
        if prev is not None and fix.t - prev < self.revisit_ms:
            return None
        sched = self._scheduled(trips, best, fix.t, exact)
        if sched is None:
            return None
        trip_id, scheduled_ms = sched
        bus.last_arrival[best] = fix.t
        headway, corrects = self.headways.add(fix.route_id, best, Passing(fix.t, device_id, site))
        return Arrival(
            device_id, fix.route_id, site, best, trip_id, fix.t, scheduled_ms, headway, corrects
        )

    def _scheduled(
        self, trips: list[str], stop_id: str, t: int, exact: bool
    ) -> tuple[str, int] | None:
        sched = self.schedule
        local = datetime.fromtimestamp(t / 1000, sched.tz)
        best: tuple[str, int] | None = None
        for day in (local.date() - timedelta(days=1), local.date()):
            base_ms = sched.service_midnight_ms(day)
            for tid in trips:
                if not sched.runs(tid, day):
                    continue  # not on this service day's calendar
                for sid, secs in sched.trips[tid].stop_times:
                    if sid != stop_id:
                        continue
                    ms = base_ms + secs * 1000
                    if best is None or abs(t - ms) < abs(t - best[1]):
                        best = (tid, ms)
        if best is None or (not exact and abs(t - best[1]) > self.max_route_delay_ms):
            return None
        return best
