"""The portal's care disclosure rules on hand-made answers (the integration tests run
the same rules over real InfluxDB data): k = 10, complementary suppression across
districts, weeks vs their days, unfinished periods, and reuse of final figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract.rules import ALERT_TYPES, PUBLIC_CARE_K
from portal.aggregates import Builder, Snapshot

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # Thursday 12:00 JST


def _answer(theme: str, residents: float | None, alerts: float = 1.0) -> dict[str, Any]:
    if theme != "care":
        return {"kpis": [{"id": "energy_consumption_kwh", "value": 5.0}]}
    kpis = [{"id": "residents_monitored", "value": residents}]
    kpis += [
        {"id": f"alerts_{t}", "value": None if residents is None else alerts} for t in ALERT_TYPES
    ]
    return {"kpis": kpis}


class City:
    """Residents per district; the city is their sum. The API's own k (5) hides < 5."""

    def __init__(self, residents: dict[str, int], empty_days: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.residents = residents
        self.empty_days = empty_days
        self.calls = 0

    def compute(
        self, theme: str, start: datetime, end: datetime, site: str | None
    ) -> dict[str, Any]:
        self.calls += 1
        day = (start + timedelta(hours=9)).date().isoformat()
        if end - start == timedelta(days=1) and day in self.empty_days:
            n = 0
        else:
            n = sum(self.residents.values()) if site is None else self.residents[site]
        return _answer(theme, None if n < 5 else float(n))


def _build(city: City, days: int = 3, weeks: int = 2) -> Snapshot:
    b = Builder(city.compute, lambda: sorted(city.residents), days, weeks, clock=lambda: NOW)
    return b.build()


def _shown(snap: Snapshot, kind: str, label: str) -> dict[str | None, bool]:
    return {s: snap.cells[("care", kind, label, s)].shown for s in [None, *snap.sites]}


def test_small_district_and_its_complement() -> None:
    snap = _build(City({"a": 4, "b": 12, "c": 11, "d": 30}))
    shown = _shown(snap, "day", "2026-12-02")
    # a (4) is under k; b and c would give it away (city - b - c - d = a): the smallest
    # published district (c, 11) is suppressed with it, so the hidden pair holds 15.
    assert shown == {None: True, "a": False, "b": True, "c": False, "d": True}


def test_hidden_group_grows_until_it_holds_k() -> None:
    snap = _build(City({"a": 3, "b": 3, "c": 3, "d": 40}))
    # a+b+c = 9 < 10: all three hidden is not enough; d must go too (city then reveals
    # a+b+c+d = 49 together, which is fine).
    assert _shown(snap, "day", "2026-12-02") == {
        None: True,
        "a": False,
        "b": False,
        "c": False,
        "d": False,
    }


def test_a_small_city_shows_nothing() -> None:
    snap = _build(City({"a": 6, "b": 3}))
    assert not any(_shown(snap, "day", "2026-12-02").values())


def test_unfinished_periods_and_weeks_with_a_suppressed_day() -> None:
    city = City({"a": 10, "b": 10}, empty_days={"2026-11-30"})  # Monday of this week
    snap = _build(city, days=4, weeks=2)
    assert not any(_shown(snap, "day", "2026-12-03").values())  # today: pending
    assert snap.cells[("care", "day", "2026-12-03", None)].pending
    assert all(_shown(snap, "day", "2026-12-02").values())
    assert not any(_shown(snap, "day", "2026-11-30").values())  # nobody that day
    assert not any(_shown(snap, "week", "2026-11-30").values())  # unfinished anyway
    # Last week: complete, every day had 20 residents.
    assert all(_shown(snap, "week", "2026-11-23").values())
    # ...unless one of its days was empty: week minus six days would be that day.
    city2 = City({"a": 10, "b": 10}, empty_days={"2026-11-25"})
    snap2 = _build(city2, days=4, weeks=2)
    assert not any(_shown(snap2, "week", "2026-11-23").values())
    # Days outside the published range still decided it, and are not published.
    assert ("care", "day", "2026-11-25", None) not in snap2.cells
    rows = snap2.rows("care", "day")
    assert {r["date"] for r in rows} == {"2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"}
    for r in rows:
        if not r["suppressed"]:
            assert r["residents_monitored"] >= PUBLIC_CARE_K
        else:
            assert r["residents_monitored"] is None and r["alerts_fall"] is None


def test_final_figures_are_reused_and_k_has_a_floor() -> None:
    city = City({"a": 10, "b": 10})
    b = Builder(city.compute, lambda: ["a", "b"], 3, 1, clock=lambda: NOW)
    b.build()
    first = city.calls
    b.build()
    # Only today and this week (3 cells each for 3 themes) are computed again.
    assert city.calls - first == 3 * 2 * 3
    # Late data (a backfill, an outbox draining) lands in "final" days: with no
    # reuse every round computes everything again.
    again = City({"a": 10, "b": 10})
    b0 = Builder(again.compute, lambda: ["a", "b"], 3, 1, clock=lambda: NOW, recheck=timedelta(0))
    b0.build()
    once = again.calls
    b0.build()
    assert again.calls == 2 * once
    with pytest.raises(ValueError, match="cannot go below 10"):
        Builder(city.compute, lambda: [], 3, 1, k=5)
