"""The residents' page in a real browser: Debian's Chromium driven by Playwright, against
``machi api`` (uvicorn, a real process) over a real influxd holding days of demo-city
history. Screenshots go to .machi/screenshots/portal/ (the path is printed)."""

from __future__ import annotations

import math
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from contract.influx import InfluxV1
from machi.browser import axe_script, launch
from machi.democity.history import write_history
from machi.servers import ApiProcess, Influxd
from portal.strings import THEMES_PUBLIC, theme_kpis
from tests.portal.conftest import KEYS, OPERATOR, PUBLIC, SAMPLE_TARGETS, city_fleet, history_start

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    work = tmp_path_factory.mktemp("portal-browser")
    db = f"b_{uuid.uuid4().hex[:10]}"
    influx = InfluxV1(influxd.url, db)
    influx.create_database()
    now = datetime.now(UTC)
    write_history(
        influx,
        city_fleet(),
        int(history_start(now).timestamp() * 1000),
        int(now.timestamp() * 1000) - 60_000,
    )
    influx.close()
    env = {
        "MACHI_API_KEYS": KEYS,
        "MACHI_API_AUDIT_LOG": str(work / "audit.jsonl"),
        "MACHI_PORTAL_FEEDBACK_DB": f"sqlite:///{work / 'feedback.db'}",
        "MACHI_PORTAL_TARGETS": str(SAMPLE_TARGETS),
        "MACHI_PORTAL_DAYS": "3",
        "MACHI_PORTAL_WEEKS": "2",
        "MACHI_PORTAL_FEEDBACK_MIN_FILL_S": "1",
        # The tests cross-check the page against /v1/kpis many times with one public key.
        "MACHI_API_RATE_KEY": "0",
        "MACHI_API_RATE_CLIENT": "0",
    }
    api = ApiProcess(work / "api", influxd.url, db, env)
    api.start(timeout=60)
    deadline = time.monotonic() + 120
    while httpx.get(api.url + "/", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the page never became ready"
        time.sleep(0.5)
    yield api
    api.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    """``.machi/screenshots/portal`` in the checkout, emptied first (kept for a look)."""
    folder = ROOT / ".machi" / "screenshots" / "portal"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nportal screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    p.on("console", on_console)
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p, errors
    ctx.close()


def _api(server: ApiProcess, theme: str, start: str, end: str, site: str | None) -> dict[str, Any]:
    params = {"start": start, "end": end} | ({"site": site} if site else {})
    r = httpx.get(
        f"{server.url}/v1/kpis/{theme}",
        params=params,
        headers={"Authorization": f"Bearer {PUBLIC}"},
    )
    assert r.status_code == 200, r.text
    return {k["id"]: k["value"] for k in r.json()["kpis"]}


def _latest_day(server: ApiProcess, theme: str, site: str | None) -> dict[str, str]:
    """The newest daily row with figures in the open data, as the page picks it."""
    rows = httpx.get(f"{server.url}/open-data/{theme}-daily.json").json()["rows"]
    mine = [
        r
        for r in rows
        if r["district"] == (site or "")
        and not r["suppressed"]
        and any(r[k.id] is not None for k in theme_kpis(theme))
    ]
    return mine[-1]


@pytest.mark.parametrize(
    ("lang", "site"), [("ja", None), ("en", None), ("ja", "yamate"), ("en", "yamate")]
)
def test_pages_show_the_api_figures(
    server: ApiProcess, page: tuple[Page, list[str]], shots: Path, lang: str, site: str | None
) -> None:
    p, errors = page
    path = ("/" if lang == "ja" else "/en/") + (f"districts/{site}/" if site else "")
    p.goto(server.url + path)
    assert p.locator("html").get_attribute("lang") == lang
    for theme in THEMES_PUBLIC:
        day = _latest_day(server, theme, site)
        api = _api(server, theme, day["start"], day["end"], site)
        for k in theme_kpis(theme):
            if not k.headline:
                continue
            fig = p.locator(f'li[data-kpi="{theme}.{k.id}"]')
            assert fig.count() == 1
            data = fig.locator("data")
            if api[k.id] is None:
                assert data.count() == 0
                continue
            shown = float(data.get_attribute("value") or "nan")
            assert shown == day[k.id]  # the page and the open data: one snapshot
            # The API computes now; green may then read its rollup up to a later
            # frontier (the CQs run every 5 min), which sums the same energy in
            # another order: equal to the last bits of a double.
            assert math.isclose(shown, api[k.id], rel_tol=1e-9), (theme, k.id, shown, api[k.id])
            assert fig.is_visible()
    name = f"{lang}-{site or 'city'}.png"
    p.screenshot(path=str(shots / name), full_page=True)
    assert (shots / name).stat().st_size > 10_000
    assert errors == []


def test_language_switch(server: ApiProcess, page: tuple[Page, list[str]]) -> None:
    p, errors = page
    p.goto(server.url + "/districts/yamate/")
    assert p.locator("html").get_attribute("lang") == "ja"
    assert p.locator("h1").inner_text() == "山手地区"
    p.click("#lang-switch")
    p.wait_for_url("**/en/districts/yamate/")
    assert p.locator("html").get_attribute("lang") == "en"
    assert p.locator("h1").inner_text() == "Yamate"
    # Keyboard: the switch is reachable and works with Enter.
    p.focus("#lang-switch")
    p.keyboard.press("Enter")
    p.wait_for_url("**/districts/yamate/")
    assert p.locator("html").get_attribute("lang") == "ja"
    assert errors == []


def test_feedback_round_trip_in_the_browser(
    server: ApiProcess, page: tuple[Page, list[str]], shots: Path
) -> None:
    p, errors = page
    text = (
        "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2> 時刻表 "
        + uuid.uuid4().hex[:6]
    )
    p.goto(server.url + "/en/")
    form = p.locator("#feedback-transit form")
    form.locator("textarea").fill(text)
    form.locator("select[name=category]").select_option("question")
    form.locator("select[name=district]").select_option("yamate")
    time.sleep(1.2)  # the form's minimum fill time
    form.locator("button[type=submit]").click()
    p.wait_for_url("**/en/?sent=transit*")
    assert p.locator("#feedback-transit .flash.ok").is_visible()
    assert text not in p.content()  # pending: not shown
    op = {"Authorization": f"Bearer {OPERATOR}"}
    items = httpx.get(f"{server.url}/v1/feedback", headers=op).json()["items"]
    mine = [i for i in items if i["text"] == text]
    assert len(mine) == 1 and mine[0]["district"] == "yamate" and mine[0]["lang"] == "en"
    fid = mine[0]["id"]
    reply = "Thank you: <b>timetables</b> are at every stop."
    assert (
        httpx.post(
            f"{server.url}/v1/feedback/{fid}/answer", json={"reply": reply}, headers=op
        ).status_code
        == 200
    )
    assert httpx.post(f"{server.url}/v1/feedback/{fid}/publish", headers=op).status_code == 200
    for path in ("/en/", "/districts/yamate/"):
        p.goto(server.url + path)
        item = p.locator(f'[data-feedback-id="{fid}"]')
        assert item.locator(".comment-text").inner_text() == text  # shown as text
        assert item.locator(".reply-text").inner_text() == reply
        assert item.locator("script").count() == 0 and item.locator("img").count() == 0
        assert p.evaluate("window.__pwned === undefined")
    p.locator(f'[data-feedback-id="{fid}"]').screenshot(path=str(shots / "feedback.png"))
    assert errors == []


@pytest.mark.parametrize("path", ["/", "/en/", "/districts/yamate/"])
def test_axe_finds_no_serious_violations(
    server: ApiProcess, page: tuple[Page, list[str]], path: str
) -> None:
    p, errors = page
    p.goto(server.url + path)
    p.add_script_tag(path=str(axe_script(ROOT)))
    result = p.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], bad
    assert len(result["passes"]) > 10  # axe really ran
    assert errors == []


def test_mobile_viewport(server: ApiProcess, browser: Browser, shots: Path) -> None:
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    p = ctx.new_page()
    try:
        p.goto(server.url + "/")
        # Nothing wider than the phone: the tables scroll inside their own region.
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, overflow
        assert p.locator('li[data-kpi="green.energy_consumption_kwh"] data').is_visible()
        p.screenshot(path=str(shots / "mobile-ja.png"), full_page=False)
    finally:
        ctx.close()
