"""``machi demo``: the whole platform on this machine, fed by the demo city.

Starts Mosquitto and InfluxDB on loopback (data under ``.machi/demo``), ``machi ingest``,
the events worker and the KPI API; backfills two hours of city history through MQTT,
then streams live telemetry with a progress display, prints what was stored and the
KPIs from the API, and stops everything cleanly on Ctrl-C or after ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole platform locally on the demo city")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--workdir", type=Path, default=Path(".machi/demo"), help="data folder")
    p.add_argument("--history-hours", type=float, default=2.0, help="history to backfill")
    p.add_argument("--meters", type=int, default=30)
    p.add_argument("--wearables", type=int, default=30)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between live readings")
    p.add_argument("--keep", action="store_true", help="keep the previous run's data")
    p.set_defaults(func=run)


def _bad_messages(prefix: str) -> list[tuple[str, bytes]]:
    """A few broken messages, to show that bad input is counted and kept, not lost."""
    return [
        (f"{prefix}/v1/telemetry/energy_meter/meter-0000", b"{not json"),
        (
            f"{prefix}/v1/telemetry/energy_meter/meter-0000",
            json.dumps(
                {
                    "device_id": "meter-0000",
                    "kind": "energy_meter",
                    "site": "x,y=1",
                    "seq": 0,
                    "readings": [{"t": 1, "power_w": 1}],
                }
            ).encode(),
        ),  # fmt: skip
        (f"{prefix}/v1/telemetry/toaster/t-1", b"{}"),
    ]


def run(args: argparse.Namespace) -> int:  # noqa: PLR0915 -- a linear script reads best here
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from contract.influx import InfluxV1
    from contract.settings import Settings
    from machi.democity.alerts import DemoAlerts
    from machi.democity.city import write_city_gtfs
    from machi.democity.fleet import build_fleet
    from machi.democity.run import backfill, fetch_kpis, format_kpis, format_portal
    from machi.servers import ApiProcess, EventsProcess, Influxd, IngestProcess, Mosquitto
    from machi.simulate import Publisher, run_simulation
    from machi.testkit import stored
    from portal.samples import SAMPLE_TARGETS

    console = Console()
    work: Path = args.workdir
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    prefix, db = "city", "city"
    api_key = secrets.token_urlsafe(16)
    started: list[Any] = []
    try:
        console.print(f"[bold]machi demo[/] — data in {work.resolve()}")
        mosq = Mosquitto(work / "mosquitto")
        influxd = Influxd(work / "influxd")
        for server in (mosq, influxd):
            server.start()
            started.append(server)
        console.print(f"  mosquitto  {mosq.url}\n  influxdb   {influxd.url}  (database {db})")
        gtfs = write_city_gtfs(work / "gtfs.zip")
        # The demo city's simulated devices are not registered: ingest runs in open mode,
        # explicitly (it logs so at start; see docs/security.md).
        ingest = IngestProcess(work / "ingest", mosq.url, influxd.url, db, prefix, open_mode=True)
        events = EventsProcess(
            work / "events",
            ["--mqtt-url", mosq.url, "--influx-url", influxd.url, "--influx-db", db,
             "--topic-prefix", prefix, "--gtfs", str(gtfs), "--open-mode"],
        )  # fmt: skip
        api = ApiProcess(
            work / "api", influxd.url, db,
            env={"MACHI_API_KEYS": f"{api_key}:operator",
                 "MACHI_API_AUDIT_LOG": str(work / "audit.jsonl"),
                 "MACHI_ALERTS_DB": f"sqlite:///{work / 'alerts.db'}",
                 # The residents' page: recomputed often so the backfill shows up soon.
                 "MACHI_PORTAL_REFRESH_S": "10", "MACHI_PORTAL_RECHECK_S": "60",
                 "MACHI_PORTAL_DAYS": "3", "MACHI_PORTAL_WEEKS": "2",
                 "MACHI_PORTAL_TARGETS": str(SAMPLE_TARGETS),
                 "MACHI_PORTAL_FEEDBACK_DB": f"sqlite:///{(work / 'feedback.db').resolve()}"},
        )  # fmt: skip
        for proc in (ingest, events, api):
            proc.start(timeout=60)
            started.append(proc)
        console.print(f"  ingest     metrics {ingest.metrics_url}")
        console.print(f"  KPI API    {api.url}/docs  (operator key: {api_key})")
        console.print(f"  [bold]residents' page[/] {api.url}/")
        console.print(f"             English {api.url}/en/")
        console.print(f"           open data {api.url}/open-data/catalog.jsonld")
        settings = Settings(
            mqtt_url=mosq.url, influx_url=influxd.url, influx_db=db, topic_prefix=prefix
        )
        fleet = build_fleet(meters=args.meters, wearables=args.wearables)
        console.print(f"Backfilling {args.history_hours} h of city history through MQTT ...")
        sent = backfill(settings, fleet, hours=args.history_hours)
        pub = Publisher(settings, "machi-demo-bad")
        for topic, payload in _bad_messages(prefix):
            pub.publish_raw(topic, payload)
        pub.close()
        console.print(
            f"  {sent:,} readings published, plus {len(_bad_messages(prefix))} broken messages"
        )
        # Alerting starts after the backfill, so history does not page anyone; one demo
        # fall then goes to tier 1, escalates to tier 2 and is acknowledged.
        alerting = DemoAlerts(work, settings, api.url, api_key)
        started.append(alerting)
        alerting.start()
        console.print("Alerts: a demo fall goes to a local SMTP server and signed webhook ...")
        alerting.raise_fall()

        def table() -> Table:
            t = Table(title="live (Ctrl-C to stop)")
            for col in ("published", "stored", "rejected", "lag s", "pending"):
                t.add_column(col, justify="right")
            with contextlib.suppress(Exception):
                t.add_row(
                    f"{sent + live[0]:,}",
                    f"{ingest.metric('machi_ingest_readings_total'):,.0f}",
                    f"{ingest.metric_sum('machi_ingest_rejects_total'):,.0f}",
                    f"{ingest.metric('machi_ingest_lag_seconds'):.1f}",
                    f"{ingest.metric('machi_ingest_pending_lines'):,.0f}",
                )
            return t

        live = [0]

        def on_tick(stats: Any) -> None:
            live[0] = stats.readings

        sim = threading.Thread(
            target=run_simulation,
            kwargs={"settings": settings, "fleet": fleet, "interval_s": args.interval,
                    "per_message": 1, "duration_s": args.duration, "stop": stop,
                    "client_id": "machi-demo-live", "on_tick": on_tick},
            daemon=True,
        )  # fmt: skip
        sim.start()
        with Live(table(), console=console, refresh_per_second=2, transient=False) as view:
            try:
                while sim.is_alive():
                    view.update(table())
                    for text in alerting.poll():
                        view.console.print(text)
                    sim.join(0.5)
            except KeyboardInterrupt:
                stop.set()
                sim.join(30)
        deadline = time.monotonic() + 30
        while not alerting.done and time.monotonic() < deadline:  # a short --duration
            for text in alerting.poll():
                console.print(text)
            time.sleep(0.2)
        for text in alerting.poll():
            console.print(text)
        console.print(alerting.summary())
        # Let the last batch land before reporting.
        time.sleep(2.5)
        reported = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        influx = InfluxV1(influxd.url, db)
        console.print("\n[bold]Stored in InfluxDB[/]")
        for m in ("energy_meter", "wearable", "bus"):
            console.print(f"  {m:<13} {stored(influx, m):>9,} points")
        for m in ("care_alert", "bus_arrival"):
            rows = influx.rows(f'SELECT count(*) FROM "{m}"')  # noqa: S608 -- fixed names
            n = (
                max((v for k, v in rows[0].items() if k.startswith("count")), default=0)
                if rows
                else 0
            )
            console.print(f"  {m:<13} {n:>9,} points")
        dl = ingest.dead_letter_file
        n_dl = sum(1 for _ in dl.open()) if dl.exists() else 0
        console.print(f"  dead letters  {n_dl:>9,} (kept in {dl})")
        # An explicit window is computed now, rather than served from the API's
        # background refresh, which may predate the data just sent.
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
        kpis = fetch_kpis(api.url, api_key, start=start, end=end)
        console.print(format_kpis(kpis), markup=False, highlight=False)
        console.print(f"\n[bold]Residents' page[/] {api.url}/ shows (city, latest day):")
        console.print(format_portal(api.url, since=reported), markup=False, highlight=False)
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        console.print("Stopping ...")
        for proc in reversed(started):
            proc.stop()
    return 0
