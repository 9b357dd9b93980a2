"""The background refresher: default-window answers served from memory, and kept fresh."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from api.kpis import KpiEngine, Window, iso
from api.refresh import Refresher
from contract.influx import InfluxV1
from contract.lineprotocol import line
from contract.settings import Settings
from machi.testkit import wait_for

pytestmark = pytest.mark.integration

KEY = "refresh-test-key-0123456"


def _meter(dev: str, site: str, t_ms: int, kwh: float) -> str:
    return line(
        "energy_meter",
        {"device_id": dev, "site": site},
        {"energy_import_kwh": kwh, "energy_export_kwh": 0.0, "seq": 1},
        t_ms,
    )


def test_default_window_is_served_from_the_refresher(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    lines = [_meter("m1", "a", now - (60 - i) * 60_000, 100.0 + i / 5) for i in range(0, 60, 5)]
    lines += [_meter("m2", "b", now - 30 * 60_000, 5.0), _meter("m2", "b", now - 60_000, 6.0)]
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    cfg = ApiConfig(
        keys=f"{KEY}:operator", cache_ttl_s=0, refresh_s=2.0, audit_log=tmp_path / "a.jsonl"
    )
    app = create_app(settings, cfg, KpiConfig())
    api = app.state.api
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(app) as client:  # `with` runs the lifespan: the refresher starts
        refresher = api.refresher
        assert refresher is not None
        wait_for(lambda: refresher.rounds >= 1, 20)
        end = refresher.end
        r = client.get("/v1/kpis/green", headers=auth)
        assert r.status_code == 200
        body = r.json()
        # The refreshed answer is exactly the on-demand answer for the snapshot's window.
        direct = KpiEngine(api.influx).theme("green", Window(end - timedelta(hours=24), end))
        assert (body["start"], body["end"]) == (direct.start, direct.end)
        assert {k["id"]: k["value"] for k in body["kpis"]} == {k.id: k.value for k in direct.kpis}
        energy = {k["id"]: k["value"] for k in body["kpis"]}["energy_consumption_kwh"]
        assert energy == pytest.approx(11.0 + 1.0)  # m1: 100 -> 111; m2: 5 -> 6
        # Each site is refreshed too, and /v1/kpis serves every theme from one round.
        site_b = client.get("/v1/kpis/green", params={"site": "b"}, headers=auth).json()
        assert {k["id"]: k["value"] for k in site_b["kpis"]}["energy_consumption_kwh"] == 1.0
        everything = client.get("/v1/kpis", headers=auth).json()
        ends = {t["theme"]: t["end"] for t in everything["themes"]}
        assert set(ends.values()) - {ends["care"]} == {everything["end"]}
        # Public care figures: the newest complete tile of the public grid, not the 24 h.
        tile = api.engine.policy.last_tile(end)
        assert (everything["themes"][1]["start"], ends["care"]) == tuple(map(iso, tile))
        hits = api.refreshed_hits._value.get()
        assert hits >= 3
        # An explicit window is computed on demand (not a refresher hit).
        params = {"start": body["start"], "end": body["end"]}
        assert client.get("/v1/kpis/green", params=params, headers=auth).json() == body
        assert api.refreshed_hits._value.get() == hits
        # New data shows up after the next round.
        more = _meter("m2", "b", int(time.time() * 1000) - 1_000, 9.0)
        assert influx.write_lines(more.encode()).status_code == 204
        rounds = refresher.rounds
        wait_for(lambda: refresher.rounds > rounds + 1, 20)
        site_b = client.get("/v1/kpis/green", params={"site": "b"}, headers=auth).json()
        assert {k["id"]: k["value"] for k in site_b["kpis"]}["energy_consumption_kwh"] == 4.0
    assert not refresher._thread or not refresher._thread.is_alive()  # stopped with the app


def test_stale_snapshot_is_not_served(influx: InfluxV1) -> None:
    refresher = Refresher(KpiEngine(influx), lambda: ["a"], interval_s=10)
    assert refresher.get("green", None) is None  # nothing computed yet
    snap = refresher.refresh()
    assert refresher.get("green", "a") is snap.answers[("green", "a")]
    assert refresher.get("green", "zz") is None  # a site it does not know
    assert refresher.get_all(None) is not None
    # Older than 3 intervals (InfluxDB failing for that long): compute again instead.
    object.__setattr__(snap, "made", time.monotonic() - 31)
    assert refresher.get("green", None) is None and refresher.get_all(None) is None
    with pytest.raises(ValueError, match="positive"):
        Refresher(KpiEngine(influx), list, interval_s=0)
