"""Start and stop: SIGTERM is honoured within 10 s, a port in use is one clear line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from machi.servers import free_port
from machi.testkit import wait_for

ROOT = Path(__file__).resolve().parents[1]
DEAD = "127.0.0.1:9"  # discard port: nothing listens, so connections are refused


def _spawn(*argv: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHI_")}
    return subprocess.Popen(
        [sys.executable, "-m", "machi.cli", *argv],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def test_events_worker_stops_on_sigterm_while_influxdb_is_unreachable(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    proc = _spawn(
        "events", "run", "--influx-url", f"http://{DEAD}", "--mqtt-url", f"mqtt://{DEAD}",
        "--open-mode", log=log,
    )  # fmt: skip
    try:
        wait_for(lambda: b"InfluxDB not ready" in log.read_bytes(), 20, "the InfluxDB retry loop")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 10
    finally:
        proc.kill()


def test_api_port_in_use_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MACHI_")}
        r = subprocess.run(
            [sys.executable, "-m", "machi.cli", "api", "--port", str(port), "--no-rollups",
             "--influx-url", f"http://{DEAD}", "--audit-log", str(tmp_path / "audit.jsonl")],
            capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if "MACHI_API_PORT" in ln]
    assert f"cannot listen on 127.0.0.1:{port}" in line
