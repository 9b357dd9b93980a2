"""`machi ingest` as a user starts it: bad values refused, a taken port, SIGTERM when stuck."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machi.servers import IngestProcess, Mosquitto, free_port


def _machi(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "machi.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [
        ("--batch-lines", "-5", "--batch-lines"),
        ("--batch-lines", "0", "--batch-lines"),
        ("--writers", "0", "--writers"),
        ("--batch-seconds", "0", "--batch-seconds"),
        ("--metrics-port", "70000", "--metrics-port"),
        ("--stats-interval", "-1", "--stats-interval"),
    ],
)
def test_out_of_range_values_are_refused_in_one_line(
    flag: str, value: str, named: str, tmp_path: Path
) -> None:
    r = _machi(
        "ingest",
        "--mqtt-url",
        f"mqtt://127.0.0.1:{free_port()}",
        "--dead-letter-file",
        str(tmp_path / "dl.jsonl"),
        flag,
        value,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert named in lines[0] and "between" in lines[0], lines[0]


def test_metrics_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = _machi(
            "ingest",
            "--mqtt-url",
            f"mqtt://127.0.0.1:{free_port()}",
            "--influx-url",
            f"http://127.0.0.1:{free_port()}",
            "--metrics-port",
            str(port),
            "--dead-letter-file",
            str(tmp_path / "dl.jsonl"),
            "--open-mode",  # else the missing registry is the one line (checked first)
        )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    # The JSON log lines (open mode's start-up warning) are not the error line.
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("{")]
    assert len(lines) == 1, r.stderr
    assert "--metrics-port/MACHI_METRICS_PORT" in lines[0] and str(port) in lines[0]
    assert "in use" in lines[0]


def test_sigterm_with_influxdb_unreachable_exits_within_10s(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every write is refused
    ing = IngestProcess(
        tmp_path / "ing", mosquitto.url, closed, "db", f"t{free_port()}", open_mode=True
    )
    ing.start()
    # Let the writers fall into their retry back-off (the zero-stats batch cannot be stored).
    time.sleep(3)
    assert ing.running
    assert ing.metric("machi_ingest_write_retries_total") > 0
    assert ing.proc is not None
    t0 = time.monotonic()
    ing.proc.send_signal(signal.SIGTERM)
    rc = ing.proc.wait(30)
    took = time.monotonic() - t0
    assert took <= 10.0, f"took {took:.1f} s to exit after SIGTERM"
    assert rc == 0
