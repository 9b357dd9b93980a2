"""Quotas on the real app over a real influxd: rate limits answer 429 with Retry-After
before any work; the expensive-query cap refuses uncached windows while the default
answers and /healthz keep flowing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig, KpiConfig
from api.quota import QuotaOptions, TokenBuckets
from contract.influx import InfluxV1
from contract.lineprotocol import line
from contract.settings import Settings

pytestmark = pytest.mark.integration

PUBLIC = "public-key-0123456789"
PUBLIC2 = "public-key-other-0123"
CARE = "care-key-0123456789ab"
KEYS = f"{PUBLIC}:public,{PUBLIC2}:public,{CARE}:care"


def _app(settings: Settings, tmp_path: Path, refresh_s: float = 0, anonymous: bool = False, **q):
    cfg = ApiConfig(
        keys=KEYS, audit_log=tmp_path / "a.jsonl", refresh_s=refresh_s, anonymous=anonymous
    )
    return create_app(settings, cfg, KpiConfig(), quotas=QuotaOptions(**q))


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def data(influx: InfluxV1) -> None:
    now = int(time.time() * 1000)
    lines = [
        line("energy_meter", {"device_id": "m1", "site": "a"}, {"power_w": 1.0, "seq": i}, now - i)
        for i in range(1, 4)
    ]
    assert influx.write_lines("\n".join(lines).encode()).status_code == 204


def test_per_key_limit_is_429_with_retry_after(
    settings: Settings, data: None, tmp_path: Path
) -> None:
    app = _app(settings, tmp_path, rate_key=0.5, rate_client=0, rate_burst=3)
    with TestClient(app) as client:
        codes = [client.get("/v1/sites", headers=_auth(PUBLIC)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.get("/v1/sites", headers=_auth(PUBLIC))
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 2
        assert "API key" in r.json()["detail"]
        # Another public key has its own bucket; care keys and probes are not limited.
        assert client.get("/v1/sites", headers=_auth(PUBLIC2)).status_code == 200
        assert all(
            client.get("/v1/sites", headers=_auth(CARE)).status_code == 200 for _ in range(10)
        )
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))
        metrics = client.get("/metrics").text
        assert 'machi_api_quota_refused_total{limit="key"} 2.0' in metrics


def test_per_client_limit_covers_anonymous_and_key_guessing(
    settings: Settings, data: None, tmp_path: Path
) -> None:
    app = _app(settings, tmp_path, anonymous=True, rate_key=0, rate_client=0.5, rate_burst=2)
    with TestClient(app) as client:
        assert [client.get("/v1/sites").status_code for _ in range(3)] == [200, 200, 429]
        # Guessing keys from the same address pays from the same bucket.
        r = client.get("/v1/sites", headers=_auth("not-a-key-0123456789"))
        assert r.status_code == 429 and "client address" in r.json()["detail"]


def test_bucket_refills_at_its_rate() -> None:
    b = TokenBuckets(rate=2.0, burst=2)
    assert b.take("x", now=0.0) == 0 and b.take("x", now=0.0) == 0
    assert b.take("x", now=0.0) == pytest.approx(0.5)
    assert b.take("x", now=0.5) == 0  # one token back after 1/rate s
    assert b.take("x", now=0.5) > 0


def test_expensive_cap_refuses_uncached_windows_but_not_defaults_or_healthz(
    settings: Settings, data: None, tmp_path: Path
) -> None:
    app = _app(
        settings, tmp_path, refresh_s=2.0, rate_key=0, rate_client=0, max_expensive=1,
        expensive_wait_s=0,
    )  # fmt: skip
    api = app.state.api
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while api.refresher.rounds < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # Every slot busy, as under a flood of uncached 31-day windows.
        assert api.quota._slots.acquire(timeout=1)
        try:
            t0 = time.perf_counter()
            r = client.get(
                "/v1/kpis/green",
                params={"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T00:00:00Z"},
                headers=_auth(PUBLIC),
            )
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            assert time.perf_counter() - t0 < 1.0  # refused at once, no InfluxDB work
            assert "uncached KPI computations" in r.json()["detail"]
            # The refreshed default answers and the probe are served meanwhile.
            assert client.get("/v1/kpis/green", headers=_auth(PUBLIC)).status_code == 200
            assert client.get("/v1/kpis", headers=_auth(PUBLIC)).status_code == 200
            assert client.get("/healthz").status_code == 200
        finally:
            api.quota._slots.release()
        r = client.get(
            "/v1/kpis/green",
            params={"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T00:00:00Z"},
            headers=_auth(PUBLIC),
        )
        assert r.status_code == 200
