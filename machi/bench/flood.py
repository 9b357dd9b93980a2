"""The flood case of ``machi bench api``: uncached 31-day windows from many clients.

``machi api`` runs as its own process (uvicorn, as in production) on the benchmark's
InfluxDB. ``clients`` flood processes, each with its own public key, ask for random
31-day windows of green/transit/platform (never cached: every window differs) as fast
as they are answered. Meanwhile this process measures the refreshed default-window
answer (``/v1/kpis/{theme}`` without start/end) and ``/healthz``, first without the
flood (the ceiling of the same run) and then under it. The quotas under test: the cap
on concurrent uncached computations (``MACHI_API_MAX_EXPENSIVE``) and, with
``--flood-rate-limits``, the per-key token buckets (per-client limits stay off: every
client here has the same address). The probe uses an operator key (not rate-limited; its
care answers are the care-scope ones, audited like any care-scope access).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from machi.servers import ApiProcess

OPERATOR = "bench-flood-operator-key-00"
THEMES = ("green", "transit", "platform")


@dataclass
class Probe:
    default_ms: list[float]
    healthz_ms: list[float]
    failed: Counter[str]  # "path status" of answers other than 200


def _rounds_done(metrics: str, loop: str) -> bool:
    """True once ``loop``'s ``machi_api_background_rounds_total`` is at least 1."""
    prefix = f'machi_api_background_rounds_total{{loop="{loop}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :]) >= 1
    return True  # the loop is off in this configuration


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _flood(base: str, key: str, end_ms: int, seconds: float, seed: int, out: Any) -> None:
    """One flood client (a process): random uncached 31-day windows, back to back."""
    rng = random.Random(seed)
    codes: Counter[int] = Counter()
    took: list[float] = []
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    stop = time.monotonic() + seconds
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        while time.monotonic() < stop:
            # Windows that cover the data, each one different to the millisecond.
            w_end = end + timedelta(milliseconds=rng.randrange(-12 * 3600_000, 12 * 3600_000))
            params = {"start": _iso(w_end - timedelta(days=31)), "end": _iso(w_end)}
            t = time.perf_counter()
            try:
                r = c.get(f"/v1/kpis/{rng.choice(THEMES)}", params=params)
                codes[r.status_code] += 1
                if r.status_code == 429:
                    time.sleep(0.01)  # a client that ignores Retry-After, nearly
            except httpx.HTTPError:
                codes[0] += 1
            took.append((time.perf_counter() - t) * 1000)
    out.put((dict(codes), took))


def _probe(base: str, seconds: float) -> Probe:
    """Default-window answers and /healthz, sampled every ~20 ms, in two threads."""
    p = Probe([], [], Counter())
    stop = time.monotonic() + seconds

    def loop(path: str, sink: list[float]) -> None:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=30
        ) as c:
            i = 0
            while time.monotonic() < stop:
                target = path.format(theme=("green", "care", "transit", "platform")[i % 4])
                t = time.perf_counter()
                r = c.get(target)
                sink.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    p.failed[f"{path} {r.status_code}"] += 1
                i += 1
                time.sleep(0.02)

    threads = [
        threading.Thread(target=loop, args=("/v1/kpis/{theme}", p.default_ms)),
        threading.Thread(target=loop, args=("/healthz", p.healthz_ms)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return p


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def run_flood(
    workdir: Path,
    influx_url: str,
    db: str,
    end_ms: int,
    clients: int,
    seconds: float,
    rate_limits: bool,
    max_expensive: int | None,
    refresh_s: float,
) -> tuple[float, float]:
    """Print the flood case; return (default p99, healthz p99) under the flood, in ms."""
    keys = [f"bench-flood-public-{i:02d}-0000" for i in range(clients)]
    env = {
        "MACHI_API_KEYS": ",".join([f"{OPERATOR}:operator", *(f"{k}:public" for k in keys)]),
        "MACHI_API_REFRESH_S": str(refresh_s),
        "MACHI_API_AUDIT_LOG": str(workdir / "flood-audit.jsonl"),
    }
    # Every client here is 127.0.0.1, so a per-client limit would lump them together:
    # it stays off; ``rate_limits`` keeps the per-key buckets at the API's defaults.
    env["MACHI_API_RATE_CLIENT"] = "0"
    if not rate_limits:
        env["MACHI_API_RATE_KEY"] = "0"
    if max_expensive is not None:
        env["MACHI_API_MAX_EXPENSIVE"] = str(max_expensive)
    api = ApiProcess(workdir / "flood-api", influx_url, db, env)
    api.start(timeout=120)
    try:
        # Wait for the refresher's first round, so default answers come from memory.
        with httpx.Client(
            base_url=api.url, headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=60
        ) as c:
            deadline = time.monotonic() + 300
            while "machi_api_refreshed_hits_total 0.0" in c.get("/metrics").text:
                c.get("/v1/kpis/green")
                if time.monotonic() > deadline:
                    raise RuntimeError("the refresher did not finish a round in 300 s")
                time.sleep(0.5)
            # ... and for the other loops' first rounds (the care publisher's tiles, the
            # boundary writer's catch-up): what is measured is the steady state, in which
            # each of them runs a short round every 5 minutes.
            for loop in ("care-publisher", "boundary-writer"):
                while not _rounds_done(c.get("/metrics").text, loop):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the {loop} did not finish a round in 300 s")
                    time.sleep(0.5)
        quiet = _probe(api.url, min(seconds, 10.0))
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_flood, args=(api.url, k, end_ms, seconds, i, out), daemon=True)
            for i, k in enumerate(keys)
        ]
        for p in procs:
            p.start()
        time.sleep(1.0)  # let the flood build up (spawned interpreters take a moment)
        loud = _probe(api.url, max(1.0, seconds - 2.0))
        results = [out.get(timeout=seconds + 180) for _ in procs]
        for p in procs:
            p.join(10)
        metrics = httpx.get(f"{api.url}/metrics", timeout=10).text
    finally:
        api.stop()
    codes: Counter[int] = Counter()
    flood_ms: list[float] = []
    for c, took in results:
        codes.update({int(k): v for k, v in c.items()})
        flood_ms += took
    limits = "per key at the defaults" if rate_limits else "off (cap only)"
    print(
        f"\nflood: {clients} clients x random uncached 31-day windows for {seconds:g} s, "
        f"rate limits {limits}, max expensive {max_expensive or 'default'}"
    )
    print(
        "flood answers: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
        + f"; flood latency p50 {statistics.median(flood_ms):.1f} ms"
    )
    refused = [ln for ln in metrics.splitlines() if ln.startswith("machi_api_quota_refused_total")]
    print("refused by quota: " + ("; ".join(refused) or "none"))
    failed = quiet.failed + loud.failed
    print(
        "probe answers other than 200: "
        + (", ".join(f"{k}: {v}" for k, v in failed.items()) or "none")
    )
    print(f"{'':<22} {'quiet p50':>9} {'quiet p99':>9} {'flood p50':>9} {'flood p99':>9} ratio p99")
    rows = (("default window", quiet.default_ms, loud.default_ms, 100.0),
            ("/healthz", quiet.healthz_ms, loud.healthz_ms, 50.0))  # fmt: skip
    worst = []
    for name, q, f, target in rows:
        q99, f99 = _pct(q, 0.99), _pct(f, 0.99)
        ok = "ok" if f99 <= target else "MISSED"
        print(
            f"{name:<22} {statistics.median(q):9.1f} {q99:9.1f} {statistics.median(f):9.1f} "
            f"{f99:9.1f} {f99 / q99:8.2f}  target p99<={target:g} ms {ok} (n={len(f)})"
        )
        worst.append(f99)
    return worst[0], worst[1]
