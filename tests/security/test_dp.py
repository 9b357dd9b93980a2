"""Differentially private public care counts (``api/dp.py``, OpenDP): the stated ε is
what the measurements spend, one resident's contribution is bounded as claimed, a tile
is released once and every later answer (other app, after a restart) reads the same
numbers back, and care keys still get exact figures. Real influxd, the real API."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from api.disclosure_options import DisclosureOptions
from api.dp import DpPolicy, assign, noisy_table
from api.quota import QuotaOptions
from contract.disclosure import CITY, COLUMNS, RESIDENTS, TOTAL
from contract.influx import InfluxV1
from contract.rules import ALERT_TYPES, CARE_DP
from contract.settings import Settings
from machi.testkit.attack import write_city

JST = timezone(timedelta(hours=9))
T0 = datetime(2024, 5, 1, tzinfo=JST).astimezone(UTC)
MS0 = int(T0.timestamp() * 1000)
PUBLIC = "public-key-0123456789"
CARE = "care-key-0123456789ab"
TILE = {"start": "2024-05-01T00:00:00+09:00", "end": "2024-05-02T00:00:00+09:00"}
KPI_OF = {RESIDENTS: "residents_monitored", TOTAL: "alerts_total"}


def test_each_measurement_spends_half_the_stated_epsilon() -> None:
    for eps, cap in ((1.0, 3), (0.5, 1), (4.0, 10)):
        policy = DpPolicy(eps, cap)
        residents, alerts = policy.measurements()
        assert residents.map(1) == pytest.approx(eps / 2)  # one resident: residents +-1
        assert alerts.map(cap) == pytest.approx(eps / 2)  # ... and at most `cap` alerts
    with pytest.raises(ValueError, match="MACHI_CARE_DP_EPSILON"):
        DpPolicy(0.0)


def _series(tags: dict[str, str], values: list[list[int]]) -> dict:
    return {"tags": tags, "values": values}


def test_one_resident_counts_once_with_at_most_max_alerts() -> None:
    readings = [
        _series({"device_id": "w1", "site": "kita"}, [[1000, 5]]),
        _series({"device_id": "w1", "site": "minami"}, [[2000, 6]]),  # moved: minami
        _series({"device_id": "w2", "site": "kita"}, [[1500, 1]]),
    ]
    alerts = [
        _series({"device_id": "w1", "site": "kita", "type": "fall"}, [[0, 4]]),
        _series({"device_id": "w1", "site": "minami", "type": "hr_high"}, [[0, 2]]),
        _series({"device_id": "w2", "site": "kita", "type": "spo2_low"}, [[0, 1]]),
        _series({"device_id": "ghost", "site": "kita", "type": "fall"}, [[0, 9]]),
    ]
    residents, cells = assign(readings, alerts, max_alerts=3)
    assert residents == {"minami": 1, "kita": 1}
    # w1's six episodes (2 hr_high, 4 fall) are cut to 3 in ALERT_TYPES order (hr_high
    # first), all counted in its home district; the unknown device counts nowhere.
    assert cells == {("minami", "hr_high"): 2, ("minami", "fall"): 1, ("kita", "spo2_low"): 1}


def test_the_release_adds_up_and_its_noise_has_the_stated_scale() -> None:
    policy = DpPolicy(1.0, 3)
    sites = [f"s{i}" for i in range(40)]
    residents = {s: 20 for s in sites}
    table = noisy_table(sites, residents, {}, policy)
    assert table[(CITY, RESIDENTS)] == sum(table[(s, RESIDENTS)] for s in sites)
    for s in [*sites, CITY]:
        assert table[(s, TOTAL)] == sum(table[(s, t)] for t in ALERT_TYPES)
        assert all(table[(s, c)] >= 0 for c in COLUMNS)
    # Residents noise: discrete Laplace of scale b = 2 / epsilon = 2, std ~ sqrt(2) b.
    errors = [
        noisy_table(sites, residents, {}, policy)[(s, RESIDENTS)] - 20
        for _ in range(25)
        for s in sites
    ]
    b = policy.scales[0]
    assert abs(statistics.mean(errors)) < 0.3
    assert 0.75 * 2**0.5 * b < statistics.pstdev(errors) < 1.25 * 2**0.5 * b


def _client(settings: Settings, tmp_path: Path, **dp: float) -> TestClient:
    app = create_app(
        settings,
        ApiConfig(
            keys=f"{PUBLIC}:public,{CARE}:care", audit_log=tmp_path / "audit.jsonl", refresh_s=0
        ),
        KpiConfig(),
        disclosure=DisclosureOptions(care_publish_s=0, **dp),  # type: ignore[arg-type]
        quotas=QuotaOptions(rate_key=0, rate_client=0),
    )
    return TestClient(app)


def _care(client: TestClient, key: str, site: str | None = None, **window: str) -> dict:
    params = {**(window or TILE), **({"site": site} if site else {})}
    r = client.get("/v1/kpis/care", params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def _values(answer: dict) -> dict[str, float | None]:
    return {k["id"]: k["value"] for k in answer["kpis"]}


def test_a_tile_is_released_once_and_kept(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    residents = {"kuji": 6, "taga": 4, "hama": 30}
    write_city(influx, residents, {("taga", "fall"): 1, ("hama", "hr_high"): 12}, MS0)
    client = _client(settings, tmp_path, care_dp_epsilon=1.0)
    first = {s: _values(_care(client, PUBLIC, s)) for s in [None, "kuji", "taga", "hama"]}
    answer = _care(client, PUBLIC, "taga")
    assert "epsilon = 1 per tile" in " ".join(answer["notes"])
    # Every figure is a number now (taga's 4 residents included), none withheld.
    assert all(first["taga"][KPI_OF.get(c, f"alerts_{c}")] is not None for c in COLUMNS)
    # The city is the sum of the districts' released figures.
    assert first[None]["residents_monitored"] == sum(
        first[s]["residents_monitored"] for s in ("kuji", "taga", "hama")
    )
    # Asked again, from another app (a restart, another API process): the same numbers.
    again = _client(settings, tmp_path, care_dp_epsilon=1.0)
    for _ in range(3):
        assert {s: _values(_care(again, PUBLIC, s)) for s in first} == first
    rows = influx.rows(f"SELECT * FROM {CARE_DP} GROUP BY site")
    assert {r["site"] for r in rows} >= {"kuji", "taga", "hama", CITY}
    assert all(r["epsilon"] == 1.0 and r["max_alerts"] == 3 for r in rows)
    # Care keys still get exact figures.
    exact = _values(_care(client, CARE, "hama"))
    assert exact["residents_monitored"] == 30 and exact["alerts_hr_high"] == 12


def test_a_tile_not_settled_yet_is_withheld(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    client = _client(settings, tmp_path, care_dp_epsilon=1.0, care_dp_settle_s=86400.0)
    policy = client.app.state.api.engine.policy  # type: ignore[attr-defined]
    start, end = policy.last_tile(now)
    write_city(influx, {"kuji": 12}, {}, int(start.timestamp() * 1000))
    window = {"start": start.isoformat(), "end": end.isoformat()}
    answer = _care(client, PUBLIC, **window)
    assert all(k["value"] is None and k["suppressed"] for k in answer["kpis"])
    assert "differentially private release" in answer["kpis"][0]["note"]
    assert influx.rows(f"SELECT * FROM {CARE_DP}") == []


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--care-dp-epsilon", "0"),
        ("--care-dp-epsilon", "11"),
        ("--care-dp-max-alerts", "0"),
        ("--care-publish-tiles", "0"),
        ("--care-publish-s", "-1"),
    ],
)
def test_bad_publisher_and_privacy_options_stop_the_api_in_one_line(flag: str, value: str) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "machi.cli", "api", flag, value, "--print-config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert flag in line and "MACHI_CARE_" in line and "Traceback" not in r.stderr
