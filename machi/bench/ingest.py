"""``machi bench ingest``: end-to-end ingest throughput and latency vs the write ceiling.

Everything runs here, on loopback: a fresh Mosquitto and InfluxDB, ``machi ingest``
worker processes, and this process as the publisher. Measured per repetition:

- ceiling: the same lines written straight to InfluxDB in the same batches (size,
  gzip, concurrency) as ingest uses -- the most ingest could ever reach here;
- (a) 1 reading per message and (b) 100 readings per message: from the first publish
  until InfluxDB has stored every reading (ingest counts a reading once /write said 204,
  at which point InfluxDB 1.x serves it to queries); the count is then checked by query;
- latency: probe messages published at a steady rate under background load; each
  probe's time from publish until a query returns it.

Medians over ``--repeat`` runs are printed with the ratio to the ceiling.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from contract.influx import InfluxV1
from contract.lineprotocol import message_lines
from contract.schema import Message, encode_message, make_message
from contract.settings import Settings
from contract.topics import Topics
from ingest.writer import V1Backend, Writer
from machi.servers import Influxd, IngestProcess, Mosquitto
from machi.simulate import Publisher
from machi.testkit import stored, wait_until


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readings", type=int, default=300_000, help="readings for scenario (b)")
    p.add_argument("--messages", type=int, default=30_000, help="messages for scenario (a)")
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument(
        "--workers", type=int, default=1, help="ingest workers on one shared subscription"
    )
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument(
        "--latency-rate",
        type=int,
        default=1000,
        help="background messages/s during the latency probe",
    )
    p.add_argument("--batch-lines", type=int, default=5000)
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--workdir", type=Path, help="keep servers' data here (default: a temp dir)")
    p.set_defaults(func=run)


def _messages(n_msgs: int, per: int, devices: int, t0: int, tag: str) -> list[Message]:
    """Realistic energy-meter messages; every reading has its own (device, t)."""
    out = []
    for i in range(n_msgs):
        dev = i % devices
        base = t0 + (i // devices) * per
        readings = [
            {
                "t": base + k,
                "power_w": 350.0 + (i * 7 + k) % 900,
                "energy_import_kwh": 1200.0 + i * 0.001 + k * 0.0001,
                "voltage_v": 101.2,
                "current_a": 3.4,
            }
            for k in range(per)
        ]
        out.append(
            make_message("energy_meter", f"{tag}-{dev:05d}", "kogyo", i // devices, readings)
        )
    return out


@dataclass
class Env:
    mosq: Mosquitto
    influxd: Influxd
    workdir: Path
    args: argparse.Namespace


def _ceiling(env: Env, msgs: list[Message], db: str) -> float:
    """Readings/s of plain batched line-protocol writes, as ingest batches them."""
    lines = [ln for m in msgs for ln in message_lines(m)]
    settings = Settings(influx_url=env.influxd.url, influx_db=db)
    backend = V1Backend(settings, use_gzip=True)
    backend.ensure_database()
    writer = Writer(backend)
    size = env.args.batch_lines
    batches = [lines[i : i + size] for i in range(0, len(lines), size)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(env.args.writers) as pool:
        for rejected in pool.map(writer.write, batches):
            assert not rejected, rejected[:1]
    return len(lines) / (time.perf_counter() - t0)


def _end_to_end(
    env: Env, msgs: list[Message], db: str, run_id: str, backlog: bool
) -> tuple[float, float]:
    """(readings/s, messages/s) until everything is stored.

    Live (``backlog=False``): timed from the first publish, with workers running -- the
    publisher in this process is part of what is measured. Backlog: the messages are
    queued first for the workers' persistent sessions, then timed from the workers'
    start: what ingest itself sustains, whatever the load generator can do.
    """
    settings = Settings(
        mqtt_url=env.mosq.url, influx_url=env.influxd.url, influx_db=db, topic_prefix=run_id
    )
    extra = ["--batch-lines", str(env.args.batch_lines), "--writers", str(env.args.writers),
             "--shared-group", "bench", "--stats-interval", "3600"]  # fmt: skip
    workers = [
        IngestProcess(
            env.workdir / f"{run_id}-w{i}",
            env.mosq.url,
            env.influxd.url,
            db,
            run_id,
            client_id=f"{run_id}-w{i}",
            extra_args=extra,
            open_mode=True,  # simulated fleet, no registry: benchmarks run open, explicitly
        )  # fmt: skip
        for i in range(env.args.workers)
    ]
    for w in workers:
        w.start()  # creates the persistent session and its subscription
    if backlog:
        for w in workers:
            w.stop()
    topics = Topics(run_id)
    payloads = [(topics.telemetry(m.kind, m.device_id), encode_message(m)) for m in msgs]
    total = sum(len(m.readings) for m in msgs)
    pub = Publisher(settings, f"{run_id}-pub", max_inflight=100)
    t0 = time.perf_counter()
    for topic, body in payloads:
        pub.publish_raw(topic, body, window=300)
    if not pub.flush(600):
        raise RuntimeError("the broker did not acknowledge every publish within 600 s")
    pub.close()
    if backlog:
        for w in workers:
            w.spawn()
        # Time from when the workers' processes are up (metrics endpoint answering), so
        # Python's start-up is not counted as ingest time.
        for w in workers:
            assert w.proc is not None
            wait_until(partial(_answers, w.metrics_url), bool, timeout=60, every=0.01)
        t0 = time.perf_counter()

    def done() -> float:
        return sum(w.metric("machi_ingest_readings_total") for w in workers)

    wait_until(done, lambda n: n >= total, timeout=600, every=0.05)
    elapsed = time.perf_counter() - t0
    for w in workers:
        w.stop()
    influx = InfluxV1(env.influxd.url, db)
    n = stored(influx, "energy_meter")
    if n != total:
        raise RuntimeError(f"stored {n} readings, expected {total}: data was lost or doubled")
    return total / elapsed, len(msgs) / elapsed


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _latency(env: Env, db: str, run_id: str) -> list[float]:
    """Publish-to-queryable seconds of probe messages under a steady background load."""
    settings = Settings(
        mqtt_url=env.mosq.url, influx_url=env.influxd.url, influx_db=db, topic_prefix=run_id
    )
    worker = IngestProcess(
        env.workdir / f"{run_id}-lat",
        env.mosq.url,
        env.influxd.url,
        db,
        run_id,
        client_id=f"{run_id}-lat",
        open_mode=True,
    )
    worker.start()
    stop = threading.Event()
    rate = env.args.latency_rate

    def background() -> None:
        pub = Publisher(settings, f"{run_id}-bg")
        seq = 0
        while not stop.is_set():
            t = time.time_ns() // 1_000_000
            tick = time.perf_counter()
            for d in range(rate // 10):
                m = make_message(
                    "energy_meter", f"bg-{d:04d}", "kogyo", seq, [{"t": t, "power_w": 1.0}]
                )
                pub.publish(m)
            seq += 1
            stop.wait(max(0.0, 0.1 - (time.perf_counter() - tick)))
        pub.close()

    bg = threading.Thread(target=background, daemon=True)
    bg.start()
    probe_pub = Publisher(settings, f"{run_id}-probe")
    influx = InfluxV1(env.influxd.url, db)
    out: list[float] = []
    end = time.monotonic() + env.args.latency_seconds
    i = 0
    while time.monotonic() < end:
        t = time.time_ns() // 1_000_000
        m = make_message("energy_meter", "probe", "kogyo", i, [{"t": t, "power_w": float(i)}])
        t0 = time.perf_counter()
        probe_pub.publish(m)
        q = f"SELECT power_w FROM energy_meter WHERE device_id = 'probe' AND time = {t}ms"  # noqa: S608
        wait_until(partial(influx.rows, q), bool, timeout=30, every=0.01)
        out.append(time.perf_counter() - t0)
        i += 1
        # A random gap, so probes do not fall into step with the batch timer.
        time.sleep(random.uniform(0.0, 1.0))
    stop.set()
    bg.join(30)
    probe_pub.close()
    worker.stop()
    return out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="machi-bench-"))
    figures: dict[str, list[float]] = {
        k: [] for k in ("ceil", "b_live", "b_backlog", "a_live", "a_backlog")
    }
    with Mosquitto(root / "mosquitto") as mosq, Influxd(root / "influxd") as influxd:
        env = Env(mosq, influxd, root, args)
        t0 = time.time_ns() // 1_000_000 - 6 * 3600 * 1000
        per_b = 100
        msgs_b = _messages(args.readings // per_b, per_b, args.devices, t0, "b")
        msgs_a = _messages(args.messages, 1, args.devices, t0, "a")
        for r in range(args.repeat):
            console.print(f"[bold]run {r + 1}/{args.repeat}[/]")
            figures["ceil"].append(_ceiling(env, msgs_b, f"ceil{r}"))
            console.print(
                f"  ceiling (plain batched writes): {figures['ceil'][-1]:,.0f} readings/s"
            )
            for mode in ("live", "backlog"):
                rb, _ = _end_to_end(env, msgs_b, f"b{mode}{r}", f"b{mode}{r}", mode == "backlog")
                figures[f"b_{mode}"].append(rb)
                console.print(f"  (b) 100 readings/message, {mode}: {rb:,.0f} readings/s")
                _, ma = _end_to_end(env, msgs_a, f"a{mode}{r}", f"a{mode}{r}", mode == "backlog")
                figures[f"a_{mode}"].append(ma)
                console.print(f"  (a) 1 reading/message, {mode}: {ma:,.0f} messages/s")
        lat = _latency(env, "lat", "lat")
    med = {k: statistics.median(v) for k, v in figures.items()}
    ceiling = med["ceil"]
    table = Table(title=f"machi bench ingest (workers={args.workers}, medians of {args.repeat})")
    for col in ("figure", "median", "ratio to ceiling", "target"):
        table.add_column(col)
    table.add_row("ceiling: batched /write", f"{ceiling:,.0f} readings/s", "1.00", "")
    for mode in ("live", "backlog"):
        b = med[f"b_{mode}"]
        table.add_row(
            f"(b) 100 readings/msg, {mode}", f"{b:,.0f} readings/s", f"{b / ceiling:.2f}",
            ">= 200,000/s and >= 0.70",
        )  # fmt: skip
    for mode in ("live", "backlog"):
        a = med[f"a_{mode}"]
        table.add_row(
            f"(a) 1 reading/msg, {mode}", f"{a:,.0f} messages/s", f"{a / ceiling:.3f}",
            ">= 5,000 msg/s",
        )  # fmt: skip
    table.add_row(
        f"latency publish->queryable ({len(lat)} probes, {args.latency_rate} msg/s load)",
        f"p50 {_pct(lat, 50) * 1000:.0f} ms, p99 {_pct(lat, 99) * 1000:.0f} ms",
        "",
        "",
    )
    console.print(table)
    console.print(
        "every run: zero lost, zero doubled (stored count checked by query after each run)"
    )
    return 0
