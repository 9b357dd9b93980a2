"""``machi bench edge``: the edge agent's RSS and CPU at 100 readings/s.

The agent runs as a subprocess (``machi edge run``) against a real local Mosquitto, fed
by NMEA GPS simulators on ptys. RSS and CPU are sampled from ``/proc/<pid>`` once a
second; medians are printed. The ceiling is a bare paho QoS 1 publisher process that
publishes the same number of readings per second in the same batches (no serial
reading, no validation, no outbox): the least any MQTT publisher in Python costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machi.testkit.edge import EdgeProcess

_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_sample(pid: int) -> tuple[float, int]:
    """(utime + stime in seconds, RSS in bytes) of ``pid`` from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK
    with open(f"/proc/{pid}/statm") as fh:
        rss = int(fh.read().split()[1]) * _PAGE
    return cpu, rss


def sample(pid: int, seconds: float, every: float = 1.0) -> tuple[float, float, float]:
    """Median RSS (MiB), median and whole-period CPU (% of one core) of ``pid``.

    CPU time ticks in 10 ms steps, so a nearly idle process has per-second samples of
    0 or 1 %: the whole-period figure is the one to compare at low load.
    """
    rss: list[float] = []
    cpu: list[float] = []
    first_cpu, _ = _proc_sample(pid)
    last_cpu, first_t = first_cpu, time.monotonic()
    last_t = first_t
    end = last_t + seconds
    while time.monotonic() < end:
        time.sleep(every)
        c, r = _proc_sample(pid)
        now = time.monotonic()
        cpu.append(100 * (c - last_cpu) / (now - last_t))
        rss.append(r / 2**20)
        last_cpu, last_t = c, now
    whole = 100 * (last_cpu - first_cpu) / (last_t - first_t)
    return statistics.median(rss), statistics.median(cpu), whole


_CEILING = """
import sys, time, msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, port, devices = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
rate, batch_s = float(sys.argv[3]), float(sys.argv[5])
c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ceiling")
c.connect(host, port)
c.loop_start()
per = max(1, round(rate * batch_s / devices))
seq = 0
while True:
    t0 = time.monotonic()
    now = int(time.time() * 1000)
    for d in range(devices):
        readings = [{"t": now + i, "lat": 35.68, "lon": 139.76, "route_id": "R1",
                     "speed_kmh": 22.8, "heading_deg": 84.4} for i in range(per)]
        msg = {"device_id": f"bus-{d}", "kind": "bus", "site": "bench", "seq": seq,
               "readings": readings}
        c.publish(f"bench/v1/telemetry/bus/bus-{d}", msgspec.json.encode(msg), qos=1)
    seq += 1
    time.sleep(max(0.0, batch_s - (time.monotonic() - t0)))
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=100.0, help="readings per second in total")
    p.add_argument("--devices", type=int, default=10, help="simulated GPS receivers (ptys)")
    p.add_argument("--seconds", type=float, default=30.0, help="sampling period per subject")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before sampling")
    p.add_argument("--batch-s", type=float, default=1.0, help="agent batch interval")


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.nmea_gps.simulator import NmeaSimulator
    from machi.servers import Mosquitto

    period = args.devices / args.rate
    with tempfile.TemporaryDirectory(prefix="machi-bench-edge-") as tmp:
        work = Path(tmp)
        (work / "dev").mkdir()
        with Mosquitto(work / "mosquitto") as mq:
            sims = [
                NmeaSimulator(work / "dev", link_name=f"gps{i}", period_s=period).start()
                for i in range(args.devices)
            ]
            try:
                doc = {
                    "agent": {"id": "bench-edge", "site": "bench", "batch_s": args.batch_s},
                    "mqtt": {"url": mq.url, "topic_prefix": "bench"},
                    "outbox": {
                        "path": str(work / "outbox.db"),
                        "max_bytes": 200_000_000,
                        # No ingest runs here to confirm storage: delete at PUBACK.
                        "require_confirmation": False,
                    },
                    "sources": [
                        {
                            "type": "nmea_gps",
                            "device_id": f"bus-{i}",
                            "port": str(s.path),
                            "route_id": "R1",
                            "use_gps_time": False,
                            "interval_s": 1.0,
                        }
                        for i, s in enumerate(sims)
                    ],
                }
                edge = EdgeProcess(work / "edge", doc).start()
                time.sleep(args.warmup)
                e_rss, e_cpu, e_all = sample(edge.pid, args.seconds)
                edge.stop()
                from edge.outbox import read_stats

                stats = read_stats(work / "outbox.db")
                committed = stats["counters"].get("committed_readings", 0)
            finally:
                for s in sims:
                    s.stop()
            ceiling = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CEILING,
                    "127.0.0.1",
                    str(mq.port),
                    str(args.rate),
                    str(args.devices),
                    str(args.batch_s),
                ]  # fmt: skip
            )
            try:
                time.sleep(args.warmup)
                c_rss, c_cpu, c_all = sample(ceiling.pid, args.seconds)
            finally:
                ceiling.kill()
                ceiling.wait()
    total_s = args.warmup + args.seconds
    print(
        f"edge agent: {args.devices} NMEA ptys, {args.rate:.0f} readings/s, batch {args.batch_s}s"
    )
    print(f"  readings committed: {committed} in ~{total_s:.0f} s ({committed / total_s:.0f}/s)")
    print(
        f"  agent    RSS median {e_rss:6.1f} MiB   CPU median {e_cpu:5.1f} %  period {e_all:5.1f} %"
    )
    print(
        f"  ceiling  RSS median {c_rss:6.1f} MiB   CPU median {c_cpu:5.1f} %  period {c_all:5.1f} %"
    )
    print(
        f"  ratio agent/ceiling: RSS x{e_rss / c_rss:.2f}"
        f"  CPU (period) x{e_all / max(c_all, 0.01):.1f}"
    )
    print(f"  target RSS <= 50 MiB: {'met' if e_rss <= 50 else 'NOT met'}")
    return 0
