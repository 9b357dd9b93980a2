"""The residents' page and open data over a real influxd: the same figure everywhere
(page, CSV, JSON, /v1/kpis for the same aligned period), care disclosure control that
survives the subtraction attacks, ETag/Last-Modified, 404s."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contract.rules import CARE_K_DEFAULT
from portal.strings import THEMES_PUBLIC, theme_kpis
from tests.portal.conftest import PUBLIC, SMALL_DISTRICT
from tests.portal.pagedata import page_figures

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {PUBLIC}"}


def _csv(client: TestClient, theme: str, kind: str = "daily") -> list[dict[str, str]]:
    r = client.get(f"/open-data/{theme}-{kind}.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(r.content.decode("utf-8"))))


def _api(client: TestClient, theme: str, start: str, end: str, site: str) -> dict[str, Any]:
    params = {"start": start, "end": end} | ({"site": site} if site else {})
    r = client.get(f"/v1/kpis/{theme}", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return {k["id"]: k["value"] for k in r.json()["kpis"]}


def _num(s: str) -> float | None:
    return None if s == "" else float(s)


@pytest.mark.parametrize("site", [None, "yamate"])
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_page_shows_the_api_figures_for_the_same_day(
    portal_client: TestClient, site: str | None, lang: str
) -> None:
    snap = portal_client.app.state.api.portal.snapshot  # type: ignore[attr-defined]
    path = ("/" if lang == "ja" else "/en/") + (f"districts/{site}/" if site else "")
    r = portal_client.get(path)
    assert r.status_code == 200
    assert f'<html lang="{lang}">' in r.text
    shown = page_figures(r.text)
    for theme in THEMES_PUBLIC:
        latest = snap.latest(theme, site)
        assert latest is not None, f"{theme} has no published day for {site}"
        period, _cell = latest
        api = _api(
            portal_client, theme, period.start.isoformat(), period.end.isoformat(), site or ""
        )
        rows = [
            r
            for r in _csv(portal_client, theme)
            if r["date"] == period.label and r["district"] == (site or "")
        ]
        assert len(rows) == 1
        headline = [k for k in theme_kpis(theme) if k.headline]
        assert headline
        for k in headline:
            key = f"{theme}.{k.id}"
            assert key in shown, key
            assert shown[key] == api[k.id] == _num(rows[0][k.id]), (key, shown[key], api[k.id])
        # The figures are real: the demo fleet's meters, wearables and buses.
        assert any(shown[f"{theme}.{k.id}"] for k in headline)


def test_every_published_cell_equals_the_api(portal_client: TestClient) -> None:
    checked = 0
    for theme in THEMES_PUBLIC:
        for kind in ("daily", "weekly"):
            r = portal_client.get(f"/open-data/{theme}-{kind}.json")
            assert r.status_code == 200
            doc = r.json()
            assert doc["license"] == "https://creativecommons.org/licenses/by/4.0/"
            csv_rows = _csv(portal_client, theme, kind)
            assert len(csv_rows) == len(doc["rows"]) > 0
            for row, crow in zip(doc["rows"], csv_rows, strict=True):
                for k in theme_kpis(theme):
                    assert row[k.id] == _num(crow[k.id])
                if row["suppressed"]:
                    continue
                api = _api(portal_client, theme, row["start"], row["end"], row["district"])
                assert {k.id: row[k.id] for k in theme_kpis(theme)} == {
                    k.id: api[k.id] for k in theme_kpis(theme)
                }
                checked += 1
    assert checked > 30


def test_care_figures_resist_differencing(portal_client: TestClient) -> None:
    for kind in ("daily", "weekly"):
        rows = _csv(portal_client, "care", kind)
        by_period: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            by_period.setdefault(r["date"], []).append(r)
            if r["suppressed"] == "false":
                assert r["complete"] == "true", "care figures of an unfinished period"
                assert float(r["residents_monitored"]) >= CARE_K_DEFAULT
            else:
                assert all(r[k.id] == "" for k in theme_kpis("care")), "a suppressed value leaked"
        for date, cells in by_period.items():
            city = next(c for c in cells if c["district"] == "")
            districts = [c for c in cells if c["district"]]
            hidden = [c for c in districts if c["suppressed"] == "true"]
            small = next(c for c in districts if c["district"] == SMALL_DISTRICT)
            assert small["suppressed"] == "true", f"{SMALL_DISTRICT} (4 residents) shown on {date}"
            if city["suppressed"] == "false" and hidden:
                # City minus the published districts = the hidden ones, together.
                published = sum(
                    float(c["residents_monitored"]) for c in districts if c not in hidden
                )
                assert float(city["residents_monitored"]) - published >= CARE_K_DEFAULT, date
                # ...and so it needs a second suppressed district with residents in it.
                assert len(hidden) >= 2
    days = _csv(portal_client, "care", "daily")
    for week in _csv(portal_client, "care", "weekly"):
        if week["suppressed"] == "false":
            inside = [
                d
                for d in days
                if week["start"] <= d["start"] < week["end"] and d["district"] == week["district"]
            ]
            assert all(d["suppressed"] == "false" for d in inside), "week minus days = one day"


def test_stable_urls_have_etag_and_last_modified(portal_client: TestClient) -> None:
    for path in (
        "/",
        "/en/",
        "/open-data/green-daily.csv",
        "/open-data/catalog.jsonld",
        "/static/portal.css",
    ):
        r = portal_client.get(path)
        assert r.status_code == 200, path
        etag, modified = r.headers["etag"], r.headers["last-modified"]
        assert etag.startswith('W/"' if path in ("/", "/en/") else '"') and modified.endswith("GMT")
        again = portal_client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == etag
        other = portal_client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200
    a = portal_client.get("/open-data/transit-daily.csv").headers["etag"]
    assert portal_client.get("/open-data/transit-daily.csv").headers["etag"] == a


@pytest.mark.parametrize(
    "path",
    [
        "/districts/atlantis/",
        "/en/districts/atlantis/",
        "/open-data/platform-daily.csv",
        "/open-data/green-hourly.csv",
        "/open-data/green-daily.xml",
        "/static/../pyproject.toml",
        "/static/secret.txt",
    ],
)
def test_unknown_things_are_404(portal_client: TestClient, path: str) -> None:
    assert portal_client.get(path).status_code == 404


def test_no_key_needed_but_the_api_still_needs_one(portal_client: TestClient) -> None:
    assert portal_client.get("/").status_code == 200
    assert portal_client.get("/open-data/care-daily.json").status_code == 200
    assert portal_client.get("/v1/kpis/care").status_code == 401
    assert portal_client.get("/v1/feedback").status_code == 401
