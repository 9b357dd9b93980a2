"""The HTTP API over a real influxd: authorization, validation, audit, GTFS-RT, cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from google.transit import gtfs_realtime_pb2

from api.app import create_app
from api.auth import key_id
from api.config import ApiConfig, KpiConfig
from contract.influx import InfluxV1
from contract.lineprotocol import line
from contract.settings import Settings

pytestmark = pytest.mark.integration

PUBLIC = "public-key-0123456789"
CARE = "care-key-0123456789ab"
OPERATOR = "operator-key-0123456789"
KEYS = f"{PUBLIC}:public,{CARE}:care,{OPERATOR}:operator"

# (path, scope it needs)
ROUTES = [
    ("/v1/kpis", "public"),
    ("/v1/kpis/green", "public"),
    ("/v1/kpis/care", "public"),
    ("/v1/kpis/transit", "public"),
    ("/v1/kpis/platform", "public"),
    ("/v1/sites", "public"),
    ("/v1/transit/vehicle-positions", "public"),
    ("/v1/devices", "care"),
    ("/v1/alerts", "care"),
]


def _client(settings: Settings, tmp_path: Path, **cfg: object) -> TestClient:
    base = {"keys": KEYS, "audit_log": tmp_path / "audit.jsonl", "cache_ttl_s": 0.0}
    base.update(cfg)
    app = create_app(settings, ApiConfig(**base), KpiConfig())  # type: ignore[arg-type]
    return TestClient(app)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(settings: Settings, influx: InfluxV1, tmp_path: Path) -> TestClient:
    now = int(time.time() * 1000)
    lines = [
        line(
            "bus",
            {"device_id": "bus-1", "site": "port", "route_id": "R1"},
            {
                "lat": 33.96,
                "lon": 133.28,
                "speed_kmh": 36.0,
                "heading_deg": 90.0,
                "trip_id": "R1-0700",
                "seq": 1,
            },
            now - 60_000,
        ),
        line(
            "bus",
            {"device_id": "bus-1", "site": "port", "route_id": "R1"},
            {"lat": 33.97, "lon": 133.29, "speed_kmh": 18.0, "trip_id": "R1-0700", "seq": 2},
            now - 5_000,
        ),
        line(
            "bus",
            {"device_id": "bus-2", "site": "port", "route_id": "R2"},
            {"lat": 33.95, "lon": 133.27, "seq": 1},
            now - 3_600_000,
        ),  # too old for the feed
        line(
            "wearable",
            {"device_id": "wb-1", "site": "hama"},
            {"heart_rate_bpm": 130.0, "seq": 1},
            now - 10_000,
        ),
        line(
            "care_alert",
            {"device_id": "wb-1", "site": "hama", "type": "hr_high"},
            {"state": "open", "value": 130.0, "episode_ms": now - 10_000},
            now - 10_000,
        ),
    ]
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204
    return _client(settings, tmp_path)


@pytest.mark.parametrize(("path", "scope"), ROUTES)
def test_authorization_on_every_route(client: TestClient, path: str, scope: str) -> None:
    r = client.get(path)
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    assert client.get(path, headers=_bearer("not-a-key-at-all-0000")).status_code == 401
    r = client.get(path, headers=_bearer(PUBLIC))
    assert r.status_code == (200 if scope == "public" else 403), r.text
    if scope == "care":
        assert "'care'" in r.json()["detail"]
    for key in (CARE, OPERATOR):
        assert client.get(path, headers=_bearer(key)).status_code == 200
    assert client.get(path, headers={"X-API-Key": OPERATOR}).status_code == 200


def test_anonymous_access_is_public_only(
    settings: Settings, influx: InfluxV1, tmp_path: Path
) -> None:
    c = _client(settings, tmp_path, anonymous=True)
    assert c.get("/v1/kpis/green").status_code == 200
    assert c.get("/v1/alerts").status_code == 401
    assert c.get("/v1/alerts", headers=_bearer("wrong-key-00000000000")).status_code == 401


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("start=yesterday", "RFC 3339"),
        ("start=2024-05-01T00:00:00", "RFC 3339"),  # no zone
        ("start=2024-05-02T00:00:00Z&end=2024-05-01T00:00:00Z", "before end"),
        ("start=2024-01-01T00:00:00Z&end=2024-05-01T00:00:00Z", "longer than"),
        ("site=a%27%20OR%201%3D1", "site"),
        ("start=2024-13-01T00:00:00Z", "start"),
    ],
)
def test_bad_parameters_are_422_with_a_reason(client: TestClient, query: str, needle: str) -> None:
    r = client.get(f"/v1/kpis/green?{query}", headers=_bearer(PUBLIC))
    assert r.status_code == 422
    assert needle in json.dumps(r.json())


def test_unknown_theme_is_422(client: TestClient) -> None:
    r = client.get("/v1/kpis/happiness", headers=_bearer(PUBLIC))
    assert r.status_code == 422 and "green" in r.text


def test_theme_shape_and_k_suppression(client: TestClient) -> None:
    r = client.get("/v1/kpis/care", headers=_bearer(PUBLIC))
    body = r.json()
    assert body["theme"] == "care"
    ids = {k["id"] for k in body["kpis"]}
    assert {"residents_monitored", "alerts_hr_high", "wearables_reporting_pct"} <= ids
    # One resident < k=10 (the public default): every figure withheld, and it says so.
    assert all(k["value"] is None and k["suppressed"] for k in body["kpis"])
    assert "k=10" in " ".join(body["notes"])
    for k in body["kpis"]:
        assert set(k) >= {"id", "value", "unit", "start", "end", "definition"}


def test_all_kpis_lists_every_theme(client: TestClient) -> None:
    body = client.get("/v1/kpis", headers=_bearer(PUBLIC)).json()
    assert [t["theme"] for t in body["themes"]] == ["green", "care", "transit", "platform"]
    transit = {k["id"]: k["value"] for k in body["themes"][2]["kpis"]}
    assert transit["active_vehicles"] == 2


def test_care_access_is_audited_without_the_secret(client: TestClient, tmp_path: Path) -> None:
    r = client.get("/v1/alerts?type=hr_high", headers=_bearer(CARE))
    assert r.status_code == 200
    alerts = r.json()["alerts"]
    assert [(a["device_id"], a["type"], a["state"]) for a in alerts] == [
        ("wb-1", "hr_high", "open")
    ]
    client.get("/v1/devices?kind=wearable", headers={"X-API-Key": OPERATOR})
    client.get("/v1/alerts", headers=_bearer(PUBLIC))  # refused: not audited as an access
    text = (tmp_path / "audit.jsonl").read_text()
    entries = [json.loads(x) for x in text.splitlines()]
    assert [(e["key_id"], e["scope"], e["action"]) for e in entries] == [
        (key_id(CARE), "care", "list_care_alerts"),
        (key_id(OPERATOR), "operator", "list_devices"),
    ]
    assert entries[0]["type"] == "hr_high" and entries[0]["ts"].endswith("Z")
    assert CARE not in text and OPERATOR not in text


def test_devices_freshness(client: TestClient) -> None:
    devs = client.get("/v1/devices", headers=_bearer(CARE)).json()["devices"]
    by_id = {d["device_id"]: d for d in devs}
    assert by_id["bus-1"]["fresh"] is True and by_id["bus-1"]["site"] == "port"
    assert by_id["bus-2"]["fresh"] is False and by_id["bus-2"]["age_s"] >= 3500
    assert by_id["wb-1"]["kind"] == "wearable"


def test_gtfs_realtime_feed_parses_back(client: TestClient) -> None:
    r = client.get("/v1/transit/vehicle-positions", headers=_bearer(PUBLIC))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.ParseFromString(r.content)
    assert feed.header.gtfs_realtime_version == "2.0"
    assert feed.header.incrementality == gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    assert [e.id for e in feed.entity] == ["bus-1"]  # bus-2 is older than max_age_s
    vp = feed.entity[0].vehicle
    assert vp.trip.trip_id == "R1-0700" and vp.trip.route_id == "R1"
    assert vp.position.latitude == pytest.approx(33.97)
    assert vp.position.speed == pytest.approx(5.0)  # 18 km/h in m/s: the newest fix
    as_json = client.get(
        "/v1/transit/vehicle-positions?format=json&max_age_s=7200", headers=_bearer(PUBLIC)
    ).json()
    assert sorted(v["vehicle_id"] for v in as_json["vehicles"]) == ["bus-1", "bus-2"]


def test_ops_routes_and_cache(settings: Settings, influx: InfluxV1, tmp_path: Path) -> None:
    c = _client(settings, tmp_path, cache_ttl_s=30.0)
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status_code == 200
    q = "/v1/kpis/green?start=2024-05-01T00:00:00Z&end=2024-05-02T00:00:00Z"
    first = c.get(q, headers=_bearer(PUBLIC)).json()
    # New data inside the window does not show until the cache entry expires.
    influx.write_lines(
        line(
            "energy_meter",
            {"device_id": "m", "site": "s"},
            {"power_w": 1.0, "energy_import_kwh": 1.0, "seq": 1},
            1714525200000,
        ).encode()
    )
    assert c.get(q, headers=_bearer(PUBLIC)).json() == first
    metrics = c.get("/metrics").text
    assert "machi_api_cache_hits_total 1.0" in metrics
    assert 'machi_api_requests_total{route="/v1/kpis/{theme}",status="200"} 2.0' in metrics


def test_readyz_reports_a_dead_database(tmp_path: Path) -> None:
    from machi.servers import free_port

    s = Settings(influx_url=f"http://127.0.0.1:{free_port()}", influx_db="x")
    c = _client(s, tmp_path)
    assert c.get("/readyz").status_code == 503
    r = c.get("/v1/kpis/green", headers=_bearer(PUBLIC))
    assert r.status_code == 503 and "unreachable" in r.json()["detail"]
