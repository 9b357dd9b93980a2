"""``machi bench portal``: time until the residents' page shows its figures, in Chromium.

Writes days of demo-city history into a real influxd, runs ``machi api`` (a real
process, uvicorn) and, on loopback, drives Debian's Chromium through Playwright: from
``page.goto`` until the first headline figure (``li[data-kpi] data``) is visible. The
ceiling, in the same run, is the same navigation to a static minimal page served by the
same server (``/static/blank.html``, waiting for its marker): the ratio shows what the
page itself costs on top of the browser and the HTTP round trip. Cold runs use a fresh
browser context (empty cache) each time; warm runs revisit in one context (ETag -> 304).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from contract.influx import InfluxV1
from machi.democity.fleet import build_fleet
from machi.democity.history import write_history
from machi.servers import ApiProcess, Influxd

FIGURES = "li[data-kpi] data"
BLANK = "main[data-ready]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=20, help="navigations per case (default 20)")
    p.add_argument("--days", type=int, default=14, help="days of history (default 14)")
    p.add_argument("--meters", type=int, default=60, help="smart meters (default 60)")
    p.add_argument("--wearables", type=int, default=60, help="care wearables (default 60)")
    p.add_argument("--target-ms", type=float, default=1000.0, help="target (default 1000 ms)")
    p.add_argument("--workdir", type=Path, help="data folder (default: a temp dir)")


def _time(page: object, url: str, selector: str) -> float:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")  # type: ignore[attr-defined]
    page.wait_for_selector(selector, state="visible")  # type: ignore[attr-defined]
    return (time.perf_counter() - t0) * 1000


def run(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    from machi.browser import launch

    tmp = tempfile.TemporaryDirectory(prefix="machi-bench-portal-")
    work = args.workdir or Path(tmp.name)
    influxd = Influxd(work / "influxd")
    influxd.start()
    api: ApiProcess | None = None
    try:
        db = f"bench_{uuid.uuid4().hex[:6]}"
        influx = InfluxV1(influxd.url, db, timeout=120)
        influx.create_database()
        now = datetime.now(UTC)
        start = now - timedelta(days=args.days)
        t0 = time.perf_counter()
        fleet = build_fleet(meters=args.meters, wearables=args.wearables)
        n = write_history(influx, fleet, int(start.timestamp() * 1000), int(now.timestamp() * 1000))
        print(f"wrote {n:,} points ({args.days} days, {len(fleet.devices)} devices) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        env = {
            "MACHI_API_ANONYMOUS": "1",
            "MACHI_API_AUDIT_LOG": str(work / "audit.jsonl"),
            "MACHI_PORTAL_FEEDBACK_DB": f"sqlite:///{work / 'feedback.db'}",
            "MACHI_PORTAL_DAYS": str(min(args.days, 92)),
        }
        api = ApiProcess(work / "api", influxd.url, db, env)
        api.start(timeout=120)
        t0 = time.perf_counter()
        while httpx.get(api.url + "/", timeout=30).status_code != 200:
            time.sleep(0.2)
        print(f"first snapshot of the public aggregates after {time.perf_counter() - t0:.1f} s")
        page_url, blank_url = api.url + "/", api.url + "/static/blank.html"
        results: dict[str, list[float]] = {}
        with sync_playwright() as pw:
            browser = launch(pw)
            for name, url, sel in (("ceiling", blank_url, BLANK), ("page", page_url, FIGURES)):
                cold, warm = [], []
                for _ in range(args.runs):
                    ctx = browser.new_context()
                    page = ctx.new_page()
                    cold.append(_time(page, url, sel))
                    ctx.close()
                ctx = browser.new_context()
                page = ctx.new_page()
                _time(page, url, sel)
                for _ in range(args.runs):
                    warm.append(_time(page, url, sel))
                ctx.close()
                results[f"{name} cold"], results[f"{name} warm"] = cold, warm
            browser.close()
        size = len(httpx.get(page_url).content)
        print(f"\nnavigation -> figures visible, Chromium on loopback, {args.runs} runs each "
              f"(page {size / 1024:.0f} KiB of HTML)")  # fmt: skip
        print(f"{'case':<14}{'median ms':>10}{'p90 ms':>9}{'ratio':>8}")
        for case, xs in results.items():
            ceiling = statistics.median(results[case.replace("page", "ceiling")])
            ratio = statistics.median(xs) / ceiling
            p90 = sorted(xs)[int(0.9 * (len(xs) - 1))]
            print(f"{case:<14}{statistics.median(xs):>10.1f}{p90:>9.1f}{ratio:>8.2f}")
        worst = max(
            statistics.median(results["page cold"]), statistics.median(results["page warm"])
        )
        verdict = "meets" if worst <= args.target_ms else "MISSES"
        print(f"\npage median {worst:.0f} ms {verdict} the {args.target_ms:.0f} ms target")
        return 0 if worst <= args.target_ms else 1
    finally:
        if api is not None:
            api.stop()
        influxd.stop()
        tmp.cleanup()
