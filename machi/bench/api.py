"""``machi bench api``: KPI API latency over 1,000 devices x 24 h in a real influxd.

Loads the data (contract line protocol, straight into InfluxDB), serves the API with
uvicorn on a loopback port in this process, and times ``GET /v1/kpis/{theme}`` for a
fixed 24-hour window with the answer cache and the refresher off (uncached). The
ceiling is the same InfluxQL sent bare to InfluxDB in the same run: the ratio shows what
the API adds on top. Then each statement alone, and finally default-window requests
(no start/end) to an API with the background refresher on, served from memory.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api import boundaries, rollups
from api.inner import InnerPlan
from api.kpis import THEMES, KpiEngine, Window
from contract.influx import InfluxV1
from contract.lineprotocol import line, message_lines
from contract.schema import make_message
from contract.settings import Settings
from machi.servers import Influxd, free_port

KEY = "bench-operator-key-000000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, default=1000, help="devices in total (default 1000)")
    p.add_argument("--hours", type=float, default=24.0, help="hours of data (default 24)")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between readings")
    p.add_argument("--requests", type=int, default=50, help="timed requests per theme")
    p.add_argument("--workdir", type=Path, help="influxd data dir (default: a temp dir)")
    p.add_argument("--target-ms", type=float, default=100.0, help="p99 target (default 100)")
    p.add_argument(
        "--refresh",
        type=float,
        default=30.0,
        help="refresher interval for the default-window measurement (default 30 s)",
    )
    p.add_argument(
        "--flood-seconds",
        type=float,
        default=20.0,
        help="flood case: seconds of uncached 31-day windows (default 20; 0 = skip)",
    )
    p.add_argument("--flood-clients", type=int, default=8, help="flood clients (default 8)")
    p.add_argument(
        "--flood-only", action="store_true", help="load the data, then run only the flood case"
    )
    p.add_argument(
        "--flood-rate-limits",
        action="store_true",
        help="keep the per-key rate limits on in the flood (default: off, so the flood "
        "reaches the expensive-query cap)",
    )
    p.add_argument(
        "--max-expensive",
        type=int,
        default=None,
        help="MACHI_API_MAX_EXPENSIVE for the flood case (default: the API's default)",
    )
    p.add_argument(
        "--statements",
        type=int,
        default=5,
        metavar="N",
        help="time each theme statement alone, median of N runs (default 5; 0 = skip)",
    )


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def load(influx: InfluxV1, devices: int, end_ms: int, hours: float, interval_s: float) -> int:
    """Meters 60 %, wearables 30 %, buses 10 %, plus derived alerts and arrivals."""
    rng = random.Random(1)
    n = int(hours * 3600 / interval_s)
    times = [end_ms - int((n - i) * interval_s * 1000) for i in range(n)]
    batch: list[str] = []
    total = 0

    def flush(force: bool = False) -> None:
        nonlocal batch, total
        if batch and (force or len(batch) >= 5000):
            r = influx.write_lines("\n".join(batch).encode(), gzip=True)
            r.raise_for_status()
            total += len(batch)
            batch = []

    sites = [f"site-{i}" for i in range(8)]
    arrivals: list[tuple[str, str, int, str, str, float]] = []
    for d in range(devices):
        site = sites[d % len(sites)]
        if d < devices * 0.6:
            kwh = rng.uniform(100, 1000)
            rs: list[dict[str, object]] = []
            for t in times:
                kwh += rng.uniform(0, 0.2)
                rs.append(
                    {
                        "t": t,
                        "power_w": rng.uniform(-2000, 3000),
                        "energy_import_kwh": kwh,
                        "energy_export_kwh": kwh / 10,
                    }
                )
            msg = make_message("energy_meter", f"m{d:04d}", site, 1, rs)
        elif d < devices * 0.9:
            rs = [{"t": t, "heart_rate_bpm": rng.gauss(70, 8), "spo2_pct": 97.0} for t in times]
            msg = make_message("wearable", f"w{d:04d}", site, 1, rs)
            for t in rng.sample(times, 2):
                batch.append(
                    line(
                        "care_alert",
                        {
                            "device_id": f"w{d:04d}",
                            "site": site,
                            "type": rng.choice(("hr_high", "fall")),
                        },
                        {"state": "open", "value": 1.0, "episode_ms": t},
                        t,
                    )
                )
        else:
            rs = [
                {
                    "t": t,
                    "lat": 34.7 + rng.random() / 50,
                    "lon": 137.4 + rng.random() / 50,
                    "route_id": f"R{d % 5}",
                    "speed_kmh": rng.uniform(0, 40),
                }
                for t in times
            ]
            msg = make_message("bus", f"b{d:04d}", site, 1, rs)
            arrivals += [
                (f"R{d % 5}", f"S{rng.randrange(20)}", t, f"b{d:04d}", site, rng.gauss(60, 90))
                for t in times
            ]
        batch.extend(message_lines(msg))
        flush()
    # headway_s as the events worker measures it: from the previous arrival of any bus
    # of the route at the stop.
    arrivals.sort()
    prev: tuple[str, str, int] | None = None
    for route, stop, t, dev, site, delay in arrivals:
        fields: dict[str, float | int | str] = {"delay_s": delay, "trip_id": "T", "scheduled_ms": t}
        if prev is not None and prev[:2] == (route, stop) and t > prev[2]:
            fields["headway_s"] = (t - prev[2]) / 1000
        prev = (route, stop, t)
        tags = {"device_id": dev, "route_id": route, "site": site, "stop_id": stop}
        batch.append(line("bus_arrival", tags, fields, t))
        flush()
    for i, t in enumerate(times):
        batch.append(
            line(
                "ingest_stats",
                {"worker": "w1"},
                {"messages": i, "readings": i, "rejected": i // 10, "lag_s": 0.2, "pending": 0},
                t,
            )
        )
    flush(force=True)
    return total


def _slot_boundaries(influx: InfluxV1, engine: KpiEngine, w: Window, n: int, end_ms: int) -> None:
    """The uncached green request with and without its slot-boundary statements (the
    stored sums in the request, live boundaries in a second one), interleaved; then the
    writer's own cost."""
    sent: list[list[str]] = []
    run = engine.run

    def record(statements: list[str]) -> list[list[dict[str, Any]]]:
        sent.append(list(statements))
        return run(statements)

    engine.run = record  # type: ignore[method-assign]
    try:
        engine.theme("green", w)
    finally:
        engine.run = run  # type: ignore[method-assign]
    plan = engine.green_plan(w)
    inner = InnerPlan.make(
        influx.db, None, plan.start_grid, w.end, engine.boundaries_stored(), engine.clock()
    )
    first, later = sent[0], sent[1:]  # later: the live boundaries (no fixed-time meters)
    extra = len(inner.statements())
    variants = {"without": [first[: len(first) - extra]], "with": [first, *later]}
    took: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(n):
        for name, requests in variants.items():
            t = time.perf_counter()
            for stmts in requests:
                influx.http.get("/query", params={"q": ";\n".join(stmts), "db": influx.db})
            took[name].append((time.perf_counter() - t) * 1000)
    a, b = statistics.median(took["without"]), statistics.median(took["with"])
    live = sum(len(r) for r in later) // 2
    print(
        f"\ngreen slot boundaries: {len(inner.bounds)} inside the window, {live} live; bare "
        f"green request without / with their statements ({extra} in the request, "
        f"{len(later)} more request(s)), median of {n}: {a:.1f} / {b:.1f} ms (ratio {b / a:.2f})"
    )
    t = time.perf_counter()
    hour = boundaries.fill(influx, end_ms - 3_600_000, end_ms)
    t_hour = time.perf_counter() - t
    t = time.perf_counter()
    day = boundaries.fill(influx, end_ms - 86_400_000, end_ms)
    t_day = time.perf_counter() - t
    print(
        f"writer: the last hour (one round) {t_hour * 1000:.0f} ms ({hour:,} points); "
        f"a day of catch-up {t_day:.1f} s ({day:,} points)"
    )


def _serve(uvicorn: Any, app: Any) -> tuple[Any, httpx.Client]:
    """Serve ``app`` with uvicorn on a loopback port (a thread); return it and a client."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    return server, httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )


def _flood(args: argparse.Namespace, workdir: Path, influx_url: str, end_ms: int) -> int:
    from machi.bench.flood import run_flood

    run_flood(
        workdir,
        influx_url,
        "bench",
        end_ms,
        args.flood_clients,
        args.flood_seconds,
        args.flood_rate_limits,
        args.max_expensive,
        args.refresh,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.config import ApiConfig, KpiConfig

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    tmp = tempfile.TemporaryDirectory(prefix="machi-bench-api-")
    workdir = args.workdir or Path(tmp.name)
    influxd = Influxd(workdir / "influxd")
    influxd.start()
    server = None
    try:
        settings = Settings(influx_url=influxd.url, influx_db="bench")
        influx = InfluxV1(influxd.url, "bench", timeout=120)
        influx.create_database()
        end_ms = (int(time.time()) // 60) * 60_000
        t0 = time.perf_counter()
        points = load(influx, args.devices, end_ms, args.hours, args.interval)
        print(
            f"loaded {points:,} points for {args.devices} devices x {args.hours:g} h "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        # What `machi api` does at start-up: create the rollup CQs, back-fill the window.
        t0 = time.perf_counter()
        rollups.setup(influx)
        rolled = rollups.run(
            influx,
            datetime.fromtimestamp(end_ms / 1000 - args.hours * 3600, UTC),
            datetime.fromtimestamp(end_ms / 1000, UTC),
        )
        print(f"rolled up {rolled:,} rollup points in {time.perf_counter() - t0:.1f} s")
        if args.flood_only:
            return _flood(args, workdir, influxd.url, end_ms)

        cfg = ApiConfig(
            keys=f"{KEY}:operator", cache_ttl_s=0, refresh_s=0, audit_log=workdir / "audit.jsonl"
        )
        server, http = _serve(uvicorn, create_app(settings, cfg, KpiConfig()))
        end = datetime.fromtimestamp(end_ms / 1000, UTC)
        start = end - timedelta(hours=24)
        params = {
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"),
        }
        engine = KpiEngine(influx, KpiConfig(), care_table_ttl_s=0)  # uncached, as the API here
        plan = engine.green_plan(Window(start, end))
        print(
            f"green: rollup intervals [{plan.start_grid:%m-%d %H:%M}, "
            f"{plan.frontier:%m-%d %H:%M}) UTC, raw tail [{plan.frontier:%H:%M}, {end:%H:%M})"
        )
        print(
            f"\n{'theme':<10} {'API p50':>9} {'API p99':>9} {'bare p50':>9} {'bare p99':>9} "
            f"{'ratio p50':>9}  target p99<={args.target_ms:g} ms"
        )
        worst = 0.0
        for theme in THEMES:
            engine.theme(theme, Window(start, end), public=False)
            # As time passes the rollup frontier may move up to the window's end during the
            # run; the API then reads a shorter raw tail than the bare statements captured here.
            q = engine.last_query
            for _ in range(3):  # warm both paths
                http.get(f"/v1/kpis/{theme}", params=params).raise_for_status()
                influx.http.get("/query", params={"q": q, "db": "bench", "epoch": "ms"})
            api_ms, bare_ms = [], []
            for _ in range(args.requests):
                t = time.perf_counter()
                http.get(f"/v1/kpis/{theme}", params=params).raise_for_status()
                api_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                influx.http.get("/query", params={"q": q, "db": "bench", "epoch": "ms"})
                bare_ms.append((time.perf_counter() - t) * 1000)
            a50, a99 = statistics.median(api_ms), _pct(api_ms, 0.99)
            b50, b99 = statistics.median(bare_ms), _pct(bare_ms, 0.99)
            worst = max(worst, a99)
            ok = "ok" if a99 <= args.target_ms else "MISSED"
            print(f"{theme:<10} {a50:9.1f} {a99:9.1f} {b50:9.1f} {b99:9.1f} {a50 / b50:9.2f}  {ok}")
        if args.statements:
            print(f"\nper statement, bare, median of {args.statements} (ms):")
            for theme in THEMES:
                engine.theme(theme, Window(start, end), public=False)
                for stmt in engine.last_query.split(";\n"):
                    took = []
                    for _ in range(args.statements):
                        t = time.perf_counter()
                        influx.http.get("/query", params={"q": stmt, "db": "bench", "epoch": "ms"})
                        took.append((time.perf_counter() - t) * 1000)
                    print(f"  {theme:<9} {statistics.median(took):7.1f}  {stmt[:150]}")
        if args.statements:
            _slot_boundaries(influx, engine, Window(start, end), args.requests, end_ms)
        # What a default request gets in production: the refresher's answers, from memory.
        server.should_exit = True
        refreshed = create_app(
            settings,
            ApiConfig(
                keys=f"{KEY}:operator",
                cache_ttl_s=0,
                refresh_s=args.refresh,
                audit_log=workdir / "audit.jsonl",
            ),
            KpiConfig(),
        )
        refresher = refreshed.state.api.refresher
        server, http = _serve(uvicorn, refreshed)
        while refresher.rounds < 1:
            time.sleep(0.1)
        print(
            f"\nrefresher on (every {args.refresh:g} s): one round = {len(THEMES)} themes x "
            f"(city + {len(refresher.sites())} sites) in {refresher.last_round_s:.2f} s"
        )
        print(f"{'theme':<10} {'p50':>9} {'p99':>9}  default window (no start/end), from memory")
        worst_refreshed = 0.0
        for theme in THEMES:
            took = []
            for i in range(args.requests):
                t = time.perf_counter()
                site = {"site": "site-1"} if i % 2 else {}
                http.get(f"/v1/kpis/{theme}", params=site).raise_for_status()
                took.append((time.perf_counter() - t) * 1000)
            p99 = _pct(took, 0.99)
            worst_refreshed = max(worst_refreshed, p99)
            ok = "ok" if p99 <= args.target_ms else "MISSED"
            print(f"{theme:<10} {statistics.median(took):9.1f} {p99:9.1f}  {ok}")
        hits = refreshed.state.api.refreshed_hits._value.get()
        print(f"served by the refresher: {hits:.0f} of {args.requests * len(THEMES)} requests")
        print(
            f"worst p99: uncached {worst:.1f} ms, default window (refreshed) "
            f"{worst_refreshed:.1f} ms (target {args.target_ms:g} ms)"
        )
        server.should_exit = True
        return _flood(args, workdir, influxd.url, end_ms) if args.flood_seconds > 0 else 0
    finally:
        if server is not None:
            server.should_exit = True
        influxd.stop()
        tmp.cleanup()
