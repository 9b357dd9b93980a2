"""``machi bench ingest``: ingest throughput and latency against ceilings measured in the
same run.

Everything runs here, on loopback: a fresh Mosquitto and InfluxDB, ``machi ingest``
processes, this process as publisher. Per repetition:

- InfluxDB ceiling: plain ``/write`` of the very lines ingest produces for scenario (b)
  (``contract.lineprotocol.message_lines``), searching batch size x concurrency, with
  gzip on and off; the best of all is the ceiling;
- MQTT ceiling: a bare paho subscriber process (``machi.bench.bare``: same library,
  protocol, Receive Maximum and persistent session, acking on arrival, doing nothing
  else) draining the same backlog of single-reading messages as (a);
- (a) 1 reading/message: backlog drain (queued for ingest's persistent session, timed
  from the worker processes being up) and live (timed from the first publish);
- (b) 100 readings/message: live and backlog;
- latency: publish -> queryable of probe readings under a steady load.

Ingest counts a reading once ``/write`` said 204 (InfluxDB 1.x serves it from then on);
after each run the stored count is checked by query: zero lost, zero doubled. Medians
over ``--repeat`` runs are printed with their ratio to the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
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
from ingest.config import resolve_workers
from machi.servers import Influxd, IngestProcess, Mosquitto, free_port
from machi.simulate import Publisher
from machi.testkit import stored, wait_until

SCENARIOS = ("ceiling", "a", "b", "latency")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--readings", type=int, default=300_000, help="readings for scenario (b)")
    p.add_argument("--messages", type=int, default=50_000, help="messages for scenario (a)")
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--workers", default="1", help="ingest --workers (a number or auto; default 1)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-lines", type=int, default=5000, help="ingest --batch-lines")
    p.add_argument("--writers", type=int, default=2, help="ingest --writers")
    p.add_argument("--ceiling-sizes", default="1000,5000,10000", help="batch sizes to try")
    p.add_argument("--ceiling-concurrency", default="1,2,4", help="concurrent writes to try")
    p.add_argument("--ceiling-sample", type=int, default=100_000, help="lines per search trial")
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument("--latency-rate", type=int, default=10_000, help="readings/s of load")
    p.add_argument("--latency-per-message", type=int, default=10)
    p.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}"
    )
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
    workers: int


# -- ceilings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteTrial:
    gzip: bool
    size: int
    concurrency: int
    rate: float  # lines/s


def _plain_write(env: Env, lines: list[str], db: str, gzip: bool, size: int, conc: int) -> float:
    """Lines/s of plain concurrent ``/write`` requests (no retries, no splitting)."""
    influx = InfluxV1(env.influxd.url, db, timeout=60)
    influx.create_database()
    bodies = ["\n".join(lines[i : i + size]).encode() for i in range(0, len(lines), size)]

    def post(body: bytes) -> None:
        r = influx.write_lines(body, precision="ms", gzip=gzip)
        if not r.is_success:
            raise RuntimeError(f"InfluxDB refused a ceiling write: {r.status_code} {r.text}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        list(pool.map(post, bodies))
    rate = len(lines) / (time.perf_counter() - t0)
    influx.close()
    return rate


def _influx_ceiling(env: Env, lines: list[str], rep: int) -> dict[bool, WriteTrial]:
    """Best (size, concurrency) per gzip setting, searched on a sample, then measured
    on all the lines."""
    sizes = [int(x) for x in env.args.ceiling_sizes.split(",")]
    concs = [int(x) for x in env.args.ceiling_concurrency.split(",")]
    sample = lines[: env.args.ceiling_sample]
    best: dict[bool, WriteTrial] = {}
    for gz in (True, False):
        trials = [
            WriteTrial(gz, s, c, _plain_write(env, sample, f"s{rep}{gz:d}{s}x{c}", gz, s, c))
            for s in sizes
            for c in concs
        ]
        top = max(trials, key=lambda t: t.rate)
        full = _plain_write(env, lines, f"c{rep}{gz:d}", gz, top.size, top.concurrency)
        best[gz] = WriteTrial(gz, top.size, top.concurrency, full)
    return best


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process and its live descendants."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_tree_cpu(int(k)) for k in kids)


def _bare_drain(env: Env, msgs: list[Message], run_id: str) -> tuple[float, float]:
    """(messages/s, CPU seconds per message) of a bare paho subscriber process draining
    ``msgs`` as a backlog. Its CPU is that of the draining run minus that of the run
    that only created the session (start-up, connect, subscribe)."""
    flt = Topics(run_id).telemetry_filter()
    cmd = [sys.executable, "-m", "machi.bench.bare", env.mosq.url, flt, f"{run_id}-bare"]
    c0 = _children_cpu()
    subprocess.run([*cmd, "0"], check=True, capture_output=True)
    startup = _children_cpu() - c0
    _publish(env, run_id, msgs)
    c1 = _children_cpu()
    out = subprocess.run([*cmd, str(len(msgs))], check=True, capture_output=True, text=True)
    cpu = _children_cpu() - c1 - startup
    return len(msgs) / float(json.loads(out.stdout)["seconds"]), max(cpu, 0.0) / len(msgs)


# -- ingest -------------------------------------------------------------------------------


class Workers:
    """``machi ingest --workers N`` as one process group; metrics on ports port..port+N-1."""

    def __init__(self, env: Env, db: str, run_id: str, *extra: str) -> None:
        self.n = env.workers
        args = ["--batch-lines", str(env.args.batch_lines), "--writers", str(env.args.writers),
                "--stats-interval", "3600", "--workers", str(self.n), *extra]  # fmt: skip
        self.proc = IngestProcess(
            env.workdir / run_id, env.mosq.url, env.influxd.url, db, run_id,
            client_id=f"{run_id}-ingest", extra_args=args,
            open_mode=True,  # simulated fleet, no registry: benchmarks run open, explicitly
        )  # fmt: skip
        base = self.proc.port = _free_ports(self.n)
        self.proc.args[self.proc.args.index("--metrics-port") + 1] = str(base)
        self.urls = (
            [self.proc.metrics_url]
            if self.n == 1
            else [f"http://127.0.0.1:{base + i}/metrics" for i in range(self.n)]
        )

    def start(self) -> None:
        self.proc.spawn()
        for url in self.urls:
            if not wait_until(partial(_metric, url, "machi_ingest_mqtt_connected"), bool, 60, 0.05):
                self.stop()
                raise RuntimeError(f"ingest worker at {url} did not connect; see {self.proc.log}")

    def spawn_and_wait_up(self) -> None:
        """Start without waiting for the subscription: returns once every worker's
        metrics endpoint answers (Python start-up is not ingest time)."""
        self.proc.spawn()
        for url in self.urls:
            wait_until(partial(_answers, url), bool, timeout=60, every=0.01)

    def cpu(self) -> float:
        assert self.proc.proc is not None
        return _tree_cpu(self.proc.proc.pid)

    def readings(self) -> float:
        return sum(_metric(u, "machi_ingest_readings_total") for u in self.urls)

    def stop(self) -> None:
        self.proc.stop(30)


def _free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free loopback ports (one per worker)."""
    for _ in range(200):
        base = free_port()
        if base + n - 1 > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports on 127.0.0.1")


# One kept-alive client for all polling: httpx.get() builds a client (and its SSL
# context) per call, ~40 ms CPU each here -- most of a core at 20 polls/s while (b) is
# timed, on the cores ingest and InfluxDB share (the ceiling runs had no such load).
_POLL = httpx.Client(timeout=2)


def _answers(url: str) -> bool:
    try:
        return _POLL.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _metric(url: str, name: str) -> float:
    try:
        text = _POLL.get(url).text
    except httpx.HTTPError:
        return 0.0
    for row in text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[-1])
    return 0.0


def _publish(env: Env, run_id: str, msgs: list[Message]) -> None:
    settings = Settings(mqtt_url=env.mosq.url, topic_prefix=run_id)
    topics = Topics(run_id)
    payloads = [(topics.telemetry(m.kind, m.device_id), encode_message(m)) for m in msgs]
    pub = Publisher(settings, f"{run_id}-pub", max_inflight=100)
    for topic, body in payloads:
        pub.publish_raw(topic, body, window=300)
    if not pub.flush(600):
        raise RuntimeError("the broker did not acknowledge every publish within 600 s")
    pub.close()


def _ingest(
    env: Env, msgs: list[Message], run_id: str, backlog: bool
) -> tuple[float, float, float]:
    """(readings/s, messages/s, CPU seconds of ingest per message) until everything is
    stored, checked by query after."""
    total = sum(len(m.readings) for m in msgs)
    workers = Workers(env, run_id, run_id)
    workers.start()  # creates the persistent sessions and their subscription
    if backlog:
        workers.stop()
        _publish(env, run_id, msgs)
        workers.spawn_and_wait_up()
        c0, t0 = workers.cpu(), time.perf_counter()
    else:
        c0, t0 = workers.cpu(), time.perf_counter()
        _publish(env, run_id, msgs)
    wait_until(workers.readings, lambda n: n >= total, timeout=600, every=0.05)
    elapsed = time.perf_counter() - t0
    cpu = workers.cpu() - c0
    workers.stop()
    influx = InfluxV1(env.influxd.url, run_id)
    n = stored(influx, "energy_meter")
    influx.close()
    if n != total:
        raise RuntimeError(f"stored {n} readings, expected {total}: data was lost or doubled")
    return total / elapsed, len(msgs) / elapsed, cpu / len(msgs)


# -- latency ------------------------------------------------------------------------------


def _latency(env: Env, run_id: str) -> tuple[list[float], int]:
    """Publish -> queryable seconds of probe readings (one every 50 ms) while a steady
    background load runs; returns the latencies and the background readings sent."""
    args = env.args
    settings = Settings(mqtt_url=env.mosq.url, topic_prefix=run_id)
    workers = Workers(env, run_id, run_id)
    workers.start()
    stop = threading.Event()
    per = args.latency_per_message
    msgs_per_tick = max(1, args.latency_rate // per // 10)  # 10 ticks per second
    sent = [0]

    def background() -> None:
        pub = Publisher(settings, f"{run_id}-bg")
        seq = 0
        while not stop.is_set():
            tick = time.perf_counter()
            t = time.time_ns() // 1_000_000
            for d in range(msgs_per_tick):
                rs = [{"t": t - per + k, "power_w": 1.0} for k in range(per)]
                pub.publish(make_message("energy_meter", f"bg-{d:05d}", "kogyo", seq, rs))
                sent[0] += per
            seq += 1
            stop.wait(max(0.0, 0.1 - (time.perf_counter() - tick)))
        pub.close()

    published: dict[int, float] = {}
    seen: dict[int, float] = {}

    def probes() -> None:
        pub = Publisher(settings, f"{run_id}-probe")
        i = 0
        while not stop.is_set():
            t = time.time_ns() // 1_000_000
            published[t] = time.perf_counter()
            pub.publish(
                make_message("energy_meter", "probe", "kogyo", i, [{"t": t, "power_w": 0.0}])
            )
            i += 1
            stop.wait(0.05)
        pub.close()

    influx = InfluxV1(env.influxd.url, run_id)
    q = "SELECT power_w FROM energy_meter WHERE device_id = 'probe' AND time > now() - 5m"

    def poll() -> None:
        while not stop.is_set() or len(seen) < len(published):
            now = time.perf_counter()
            for r in influx.rows(q):
                seen.setdefault(int(r["time"]), now)
            if stop.is_set() and time.perf_counter() - stop_at[0] > 30:
                return
            time.sleep(0.02)

    stop_at = [0.0]
    threads = [threading.Thread(target=f, daemon=True) for f in (background, probes, poll)]
    for th in threads:
        th.start()
    time.sleep(args.latency_seconds)
    stop_at[0] = time.perf_counter()
    stop.set()
    for th in threads:
        th.join(60)
    total = sent[0] + len(published)
    wait_until(workers.readings, lambda n: n >= total, timeout=60)
    workers.stop()
    n = stored(influx, "energy_meter")
    influx.close()
    if n != total:
        raise RuntimeError(f"latency run stored {n} readings, expected {total}")
    lat = [seen[t] - p for t, p in published.items() if t in seen]
    if len(lat) != len(published):
        raise RuntimeError(f"{len(published) - len(lat)} probes never became queryable")
    return lat, sent[0]


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    todo = set(args.scenarios.split(","))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="machi-bench-"))
    figs: dict[str, list[float]] = {}
    best_cfg: dict[bool, list[WriteTrial]] = {True: [], False: []}

    def note(key: str, value: float, text: str) -> None:
        figs.setdefault(key, []).append(value)
        console.print(f"  {text}  [dim]({_load()})[/]")

    with Mosquitto(root / "mosquitto") as mosq, Influxd(root / "influxd") as influxd:
        env = Env(mosq, influxd, root, args, resolve_workers(args.workers))
        t0 = time.time_ns() // 1_000_000 - 6 * 3600 * 1000
        msgs_b = _messages(args.readings // 100, 100, args.devices, t0, "b")
        msgs_a = _messages(args.messages, 1, args.devices, t0, "a")
        lines_b = [ln for m in msgs_b for ln in message_lines(m)]
        for r in range(args.repeat):
            console.print(f"[bold]run {r + 1}/{args.repeat}[/] (workers={env.workers})")
            if todo & {"ceiling", "b"}:
                best = _influx_ceiling(env, lines_b, r)
                for gz, t in best.items():
                    best_cfg[gz].append(t)
                    what = f"InfluxDB /write, gzip {'on' if gz else 'off'}"
                    how = f"batch {t.size}, {t.concurrency} concurrent"
                    note(f"influx_gzip{gz:d}", t.rate, f"{what}: {t.rate:,.0f} lines/s ({how})")
                figs.setdefault("influx", []).append(max(t.rate for t in best.values()))
            if todo & {"ceiling", "a"}:
                rate, cpu = _bare_drain(env, msgs_a, f"bare{r}")
                figs.setdefault("bare_cpu", []).append(cpu)
                note(
                    "bare", rate, f"bare paho drain: {rate:,.0f} msg/s, {cpu * 1e6:.0f} µs CPU/msg"
                )
            if "a" in todo:
                for mode in ("backlog", "live"):
                    _, ma, cpu = _ingest(env, msgs_a, f"a{mode}{r}", mode == "backlog")
                    figs.setdefault(f"a_{mode}_cpu", []).append(cpu)
                    us = f"{cpu * 1e6:.0f} µs CPU/msg"
                    note(f"a_{mode}", ma, f"(a) 1 reading/msg, {mode}: {ma:,.0f} msg/s, {us}")
            if "b" in todo:
                for mode in ("live", "backlog"):
                    rb, _, cpu = _ingest(env, msgs_b, f"b{mode}{r}", mode == "backlog")
                    ms = cpu * 1000 * 1000  # per message of 100 readings -> ms per 100k
                    figs.setdefault(f"b_{mode}_cpu", []).append(ms)
                    what = f"(b) 100 readings/msg, {mode}: {rb:,.0f} readings/s"
                    note(f"b_{mode}", rb, f"{what}, {ms:.0f} ms CPU per 100k readings")
        lat: list[float] = []
        if "latency" in todo:
            lat, bg = _latency(env, "lat")
            console.print(
                f"  latency: {len(lat)} probes, {bg / args.latency_seconds:,.0f} readings/s "
                f"background  [dim]({_load()})[/]"
            )
    med = {k: statistics.median(v) for k, v in figs.items()}
    table = Table(title=f"machi bench ingest (workers={env.workers}, medians of {args.repeat})")
    for col in ("figure", "median", "runs", "ratio", "target"):
        table.add_column(col)

    def row(key: str, label: str, unit: str, ceiling: str | None, target: str = "") -> None:
        if key not in med:
            return
        runs = " / ".join(f"{x:,.0f}" for x in figs[key])
        ratio = ""
        if ceiling in med:
            # Each run against its own ceiling, then the median of those ratios.
            per_run = [x / c for x, c in zip(figs[key], figs[ceiling], strict=False)]
            each = "/".join(f"{x:.2f}" for x in per_run)
            ratio = f"{statistics.median(per_run):.2f} of {ceiling} ({each})"
        table.add_row(label, f"{med[key]:,.0f} {unit}", runs, ratio, target)

    for gz in (True, False):
        cfgs = ", ".join(f"{t.size}x{t.concurrency}" for t in best_cfg[gz])
        row(f"influx_gzip{gz:d}", f"InfluxDB /write gzip {'on' if gz else 'off'} ({cfgs})",
            "lines/s", "influx")  # fmt: skip
    row("influx", "ceiling: InfluxDB (best of both)", "lines/s", None)
    row("bare", "ceiling: bare paho drain", "msg/s", None)
    row("a_backlog", "(a) 1 reading/msg, backlog", "msg/s", "bare", ">= 0.5 of bare")
    row("a_live", "(a) 1 reading/msg, live", "msg/s", "bare")
    if "bare_cpu" in med and "a_backlog_cpu" in med:
        table.add_row(
            "CPU per message: bare / ingest (a) backlog",
            f"{med['bare_cpu'] * 1e6:.0f} / {med['a_backlog_cpu'] * 1e6:.0f} µs",
            " / ".join(f"{x * 1e6:.0f}" for x in figs["a_backlog_cpu"]),
            f"{med['bare_cpu'] / med['a_backlog_cpu']:.2f} (bare/ingest)",
            "",
        )
    row("b_live", "(b) 100 readings/msg, live", "readings/s", "influx", ">= 0.5 of influx")
    row("b_backlog", "(b) 100 readings/msg, backlog", "readings/s", "influx")
    row("b_live_cpu", "(b) live: ingest CPU per 100k readings", "ms", None)
    row("b_backlog_cpu", "(b) backlog: ingest CPU per 100k readings", "ms", None)
    if lat:
        p99 = _pct(lat, 99)
        table.add_row(
            f"latency publish->queryable at {args.latency_rate:,} readings/s",
            f"p50 {_pct(lat, 50) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            f"{len(lat)} probes, max {max(lat) * 1000:.0f} ms",
            f"{p99 / 1.5:.2f} of 1.5 s",
            "p99 <= 1.5 s",
        )
    console.print(table)
    console.print("every run: zero lost, zero doubled (stored count checked by query)")
    return 0
