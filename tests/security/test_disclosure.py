"""Attacks on published care figures, as the issue's probe did them, against the real
API (TestClient) over a real influxd: site complements, type sums, totals and
overlapping windows. Nothing suppressed may be recoverable, and what is published must
be exactly right (ranges must contain the true count)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from api.disclosure_options import DisclosureOptions
from api.quota import QuotaOptions
from contract.disclosure import (
    CITY,
    COLUMNS,
    RESIDENTS,
    TOTAL,
    CareTable,
    Protected,
    complementary,
    protect,
)
from contract.influx import InfluxV1
from contract.rules import ALERT_TYPES
from contract.settings import Settings
from machi.testkit.attack import MIXED_ALERTS, MIXED_RESIDENTS, check_correct, derivable, truth
from machi.testkit.attack import write_city as _write_city

JST = timezone(timedelta(hours=9))

pytestmark = pytest.mark.integration

PUBLIC = "public-key-0123456789"
CARE = "care-key-0123456789ab"
T0 = datetime(2024, 5, 1, tzinfo=JST).astimezone(UTC)  # a tile of the default grid (00:00 JST)
MS0 = int(T0.timestamp() * 1000)
HOUR = 3_600_000
KPI_OF = {RESIDENTS: "residents_monitored", TOTAL: "alerts_total"}


def kpi_id(col: str) -> str:
    return KPI_OF.get(col, f"alerts_{col}")


def api_client(
    settings: Settings, tmp_path: Path, k: int = 10, k_care: int | None = None
) -> TestClient:
    app = create_app(
        settings,
        ApiConfig(
            keys=f"{PUBLIC}:public,{CARE}:care", audit_log=tmp_path / "audit.jsonl", refresh_s=0
        ),
        KpiConfig(care_k=k),
        disclosure=DisclosureOptions(care_k_care=k_care),
        quotas=QuotaOptions(rate_key=0, rate_client=0),
    )
    return TestClient(app)


def published(client: TestClient, rows: list[str], key: str = PUBLIC, **window: str) -> dict:
    """Everything a caller can read: cell -> value | (lo, hi) | None (suppressed)."""
    params = window or {"start": "2024-05-01T00:00:00+09:00", "end": "2024-05-02T00:00:00+09:00"}
    out: dict = {}
    for row in rows:
        q = dict(params) if row == CITY else {**params, "site": row}
        r = client.get("/v1/kpis/care", params=q, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        kpis = {k["id"]: k for k in r.json()["kpis"]}
        for col in COLUMNS:
            k = kpis[kpi_id(col)]
            out[(row, col)] = tuple(k["range"]) if k.get("range") else k["value"]
    return out


def write_city(influx: InfluxV1, residents: dict[str, int], alerts: dict) -> None:
    _write_city(influx, residents, alerts, MS0)


def test_the_probe_city_minus_kuji_no_longer_gives_taga(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    """Ten residents, six in kuji, four in taga, one fall in taga; k = 5 (the lowest a
    deployment may set for the public) and the default 10."""
    residents, alerts = {"kuji": 6, "taga": 4}, {("taga", "fall"): 1}
    write_city(influx, residents, alerts)
    true = truth(residents, alerts)
    for k in (5, 10):
        pub = published(api_client(settings, tmp_path, k=k), ["kuji", "taga", CITY])
        check_correct(pub, true)
        assert all(pub[("taga", c)] is None for c in COLUMNS)  # taga is below k
        # The probe's subtraction: city minus kuji. kuji is withheld too now.
        assert pub[("kuji", RESIDENTS)] is None
        assert not isinstance(pub[("kuji", "fall")], float)  # withheld, or a range
        if k == 5:
            assert pub[(CITY, RESIDENTS)] == 10  # the city figure is still published
        assert isinstance(pub[(CITY, "fall")], tuple)  # one fall: published as [0, 9]
        assert not derivable(pub, ["kuji", "taga"])


def test_no_suppressed_figure_is_derivable_and_published_ones_are_exact(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    """A larger city with big and small counts: every hidden or ranged cell stays
    undetermined by city = sum of sites and total = sum of types."""
    residents, alerts = MIXED_RESIDENTS, MIXED_ALERTS
    write_city(influx, residents, alerts)
    true = truth(residents, alerts)
    sites = sorted(residents)
    client = api_client(settings, tmp_path)
    pub = published(client, [*sites, CITY])
    check_correct(pub, true)
    assert not derivable(pub, sites)
    # Something useful is still published exactly (not everything withheld).
    exact = {c for c, v in pub.items() if isinstance(v, float)}
    assert {("hama", RESIDENTS), ("hama", "hr_high"), (CITY, "hr_high"), (CITY, TOTAL)} <= exact
    # The naive subtractions of the probe, spelled out: each needs a hidden operand.
    for col in COLUMNS:
        others = [pub[(s, col)] for s in sites if s != "taga"]
        assert (
            pub[(CITY, col)] is None
            or isinstance(pub[(CITY, col)], tuple)
            or any(not isinstance(v, float) for v in others)
        )
    for site in [*sites, CITY]:
        if pub[(site, "fall")] is None or isinstance(pub[(site, "fall")], tuple):
            assert not (
                isinstance(pub[(site, TOTAL)], float)
                and all(isinstance(pub[(site, t)], float) for t in ALERT_TYPES if t != "fall")
            )


def test_overlapping_and_off_grid_public_windows_are_refused(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    write_city(influx, {"kuji": 12, "taga": 4}, {("taga", "fall"): 1})
    client = api_client(settings, tmp_path)
    auth = {"Authorization": f"Bearer {PUBLIC}"}
    for start, end in [
        ("2024-05-01T01:00:00+09:00", "2024-05-02T01:00:00+09:00"),  # shifted by an hour
        ("2024-05-01T00:00:00+09:00", "2024-05-03T00:00:00+09:00"),  # two tiles: a union
        ("2024-05-01T00:00:00+09:00", "2024-05-01T12:00:00+09:00"),  # part of a tile
        ("2024-04-30T12:00:00+09:00", "2024-05-01T12:00:00+09:00"),  # overlaps two tiles
    ]:
        r = client.get("/v1/kpis/care", params={"start": start, "end": end}, headers=auth)
        assert r.status_code == 422, (start, end, r.text)
        assert "fixed windows of 24 h" in r.json()["detail"]
        # /v1/kpis answers the other themes and withholds care for such a window.
        allk = client.get("/v1/kpis", params={"start": start, "end": end}, headers=auth).json()
        care = next(t for t in allk["themes"] if t["theme"] == "care")
        assert all(k["value"] is None and k["suppressed"] for k in care["kpis"])
    # Adjacent tiles are fine, and never overlap.
    for day in ("2024-05-01", "2024-05-02"):
        nxt = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
        r = client.get(
            "/v1/kpis/care",
            params={"start": f"{day}T00:00:00+09:00", "end": f"{nxt}T00:00:00+09:00"},
            headers=auth,
        )
        assert r.status_code == 200


def test_care_scope_gets_any_window_at_its_k_and_is_audited(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    write_city(influx, {"kuji": 6, "taga": 7}, {("taga", "fall"): 1})
    client = api_client(settings, tmp_path, k=10, k_care=5)
    window = {"start": "2024-04-30T15:15:00Z", "end": "2024-05-01T05:00:00+09:00"}
    care = published(client, ["kuji", "taga", CITY], key=CARE, **window)
    # k=5 for the care team, and exact small counts: taga's fall is visible to them.
    assert care[("taga", "fall")] == 1 and care[("kuji", RESIDENTS)] == 6
    # The public, with k=10, sees neither site (both under 10) and only the city row.
    pub = published(client, ["kuji", "taga", CITY])
    assert pub[("kuji", RESIDENTS)] is None and pub[("taga", RESIDENTS)] is None
    assert pub[(CITY, RESIDENTS)] == 13 and isinstance(pub[(CITY, "fall")], tuple)
    entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e.get("site")) for e in entries] == [
        ("care_kpis", "kuji"), ("care_kpis", "taga"), ("care_kpis", None)
    ]  # fmt: skip
    assert all(e["start"] == "2024-04-30T15:15:00.000Z" for e in entries)


# --- the algorithm on its own, on many random tables ----------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_complementary_suppression_leaves_nothing_derivable(seed: int) -> None:
    rng = random.Random(seed)
    sites = [f"s{i}" for i in range(rng.randint(1, 6))]
    residents = {s: rng.choice([0, 2, 4, 5, 9, 10, 12, 30, 80]) for s in sites}
    alerts = {
        (s, t): rng.choice([0, 0, 1, 3, 9, 10, 11, 25])
        for s in sites
        for t in ALERT_TYPES
        if residents[s]
    }
    table = CareTable({**residents, CITY: sum(residents.values())}, alerts)
    for k, small in ((10, 10), (5, None), (5, 3)):
        prot = protect(table, k, small)
        pub = {c: (prot.ranges[c] if c in prot.ranges else prot.value(c)) for c in prot.values}
        pub = {c: float(v) if isinstance(v, int) else v for c, v in pub.items()}
        assert not derivable(pub, sites), (seed, k, small)
        for (row, _col), v in pub.items():
            if table.residents.get(row, 0) < k:
                assert v is None  # k rows are withheld entirely
        check_correct(pub, table.cells())


def test_complementary_is_a_fixpoint_and_minimal_on_the_probe() -> None:
    table = CareTable({"kuji": 6, "taga": 4, CITY: 10}, {("taga", "fall"): 1})
    values = table.cells()
    primary = {("taga", c) for c in COLUMNS}
    hidden = complementary(values, table.relations(), primary)
    # taga's row, and in each column the smallest other cell: kuji (city stays).
    assert hidden == primary | {("kuji", c) for c in COLUMNS}


def test_the_attack_check_finds_what_single_cell_suppression_leaks() -> None:
    """The checker itself: with taga alone hidden (main before this change), city minus
    kuji gives taga, and ``derivable`` finds every one of taga's cells."""
    table = CareTable({"kuji": 6, "taga": 4, CITY: 10}, {("taga", "fall"): 1})
    pub: dict = {c: float(v) for c, v in table.cells().items()}
    for c in COLUMNS:
        pub[("taga", c)] = None
    assert derivable(pub, ["kuji", "taga"]) == {("taga", c) for c in COLUMNS}
    # Type sums: one type hidden in a row with a published total is found too.
    pub = {c: float(v) for c, v in table.cells().items()}
    pub[("kuji", "fall")] = (0, 9)
    assert ("kuji", "fall") in derivable(pub, ["kuji", "taga"])


def _hidden_rows(prot: Protected, rows: list[str]) -> set[str]:
    return {r for r in rows if (r, RESIDENTS) in prot.hidden}


@pytest.mark.parametrize(
    ("residents", "hidden"),
    [
        # a (4) is under k; b, c and d published would give city - b - c - d = a (one
        # site, 4 people): the smallest published site (c, 11) goes with it.
        ({"a": 4, "b": 12, "c": 11, "d": 30}, {"a", "c"}),
        # a + b + c = 9 < 10: three small sites together are still fewer than k people,
        # so d goes too (the city then reveals only all 49 together).
        ({"a": 3, "b": 3, "c": 3, "d": 40}, {"a", "b", "c", "d"}),
        # Nothing left to hide but the city: a city of 9 shows nothing at all.
        ({"a": 6, "b": 3}, {"a", "b", CITY}),
        # Two small sites that hold k together need nobody else.
        ({"a": 6, "b": 5, "c": 30}, {"a", "b"}),
    ],
)
def test_suppressed_sites_together_hold_at_least_k_residents(
    residents: dict[str, int], hidden: set[str]
) -> None:
    table = CareTable({**residents, CITY: sum(residents.values())})
    prot = protect(table, 10, 10)
    assert _hidden_rows(prot, [*residents, CITY]) == hidden
    group = [r for r in hidden - {CITY} if residents[r] >= 10]
    for r in group:
        assert "together hold fewer than k=10" in prot.reasons[(r, RESIDENTS)]


@pytest.mark.parametrize("seed", range(40))
def test_the_hidden_remainder_of_the_city_is_never_a_small_group(seed: int) -> None:
    rng = random.Random(1000 + seed)
    residents = {f"s{i}": rng.choice([0, 1, 3, 4, 6, 9, 11, 15, 40]) for i in range(6)}
    table = CareTable({**residents, CITY: sum(residents.values())})
    for k in (5, 10):
        prot = protect(table, k, 10)
        hidden = _hidden_rows(prot, list(residents))
        if (CITY, RESIDENTS) not in prot.hidden and hidden:
            # city minus the published sites = the hidden sites, together: >= k people.
            assert sum(residents[s] for s in hidden) >= k, (seed, k, hidden)
