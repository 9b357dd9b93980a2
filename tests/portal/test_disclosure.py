"""The portal publishes the API's protected care answers (``contract.disclosure``) and
adds its own rule: nothing of an unfinished period. Hand-made tables go through the real
``protect`` and ``Policy`` here; the integration tests run the same path over real
InfluxDB data through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contract.disclosure import CITY, CareTable, Policy, protect
from contract.rules import ALERT_TYPES, CARE_K_DEFAULT
from portal.aggregates import Builder, Snapshot

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # Thursday 12:00 JST


POLICY = Policy()  # the API's public defaults: k = 10, daily grid from 00:00 JST


class City:
    """Residents per district, answered as the API's public care route answers them."""

    def __init__(self, residents: dict[str, int], empty_days: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.residents = residents
        self.empty_days = empty_days
        self.calls = 0

    def compute(
        self, theme: str, start: datetime, end: datetime, site: str | None
    ) -> dict[str, Any]:
        self.calls += 1
        if theme != "care":
            return {"kpis": [{"id": "energy_consumption_kwh", "value": 5.0}]}
        day = (start + timedelta(hours=9)).date().isoformat()
        per_site = {s: 0 if day in self.empty_days else n for s, n in self.residents.items()}
        table = CareTable(
            {**per_site, CITY: sum(per_site.values())},
            {(s, "fall"): 1 for s, n in per_site.items() if n},
        )
        prot = protect(table, POLICY.k_public, POLICY.small_count)
        on_grid = POLICY.on_grid(start, end)
        row = site or CITY
        kpis = [
            {
                "id": "residents_monitored",
                "value": prot.value((row, "residents")) if on_grid else None,
            }
        ]
        kpis += [
            {"id": f"alerts_{t}", "value": prot.value((row, t)) if on_grid else None}
            for t in ALERT_TYPES
        ]
        return {"kpis": kpis}


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


def test_unfinished_periods_and_weeks_off_the_grid() -> None:
    city = City({"a": 10, "b": 10}, empty_days={"2026-11-30"})  # Monday of this week
    snap = _build(city, days=4, weeks=2)
    assert not any(_shown(snap, "day", "2026-12-03").values())  # today: pending
    assert snap.cells[("care", "day", "2026-12-03", None)].pending
    assert all(_shown(snap, "day", "2026-12-02").values())
    assert not any(_shown(snap, "day", "2026-11-30").values())  # nobody that day
    # A week is a union of seven tiles of the daily public grid: the API never answers
    # it (week minus six published days would be the seventh), so neither does the page.
    assert not any(_shown(snap, "week", "2026-11-23").values())
    rows = snap.rows("care", "day")
    assert {r["date"] for r in rows} == {"2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"}
    for r in rows:
        if not r["suppressed"]:
            assert r["residents_monitored"] >= CARE_K_DEFAULT
        else:
            assert r["residents_monitored"] is None and r["alerts_fall"] is None


def test_final_figures_are_reused() -> None:
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


def test_the_page_never_goes_under_the_public_default_k() -> None:
    lowered = Policy(k_public=5, k_care=5)
    assert lowered.at_least(CARE_K_DEFAULT).k_public == CARE_K_DEFAULT
    assert Policy(k_public=20).at_least(CARE_K_DEFAULT).k_public == 20
