"""A whole edge stack for end-to-end and fault tests: NMEA GPS simulators on ptys ->
``machi edge run`` -> Mosquitto -> ``machi ingest`` -> InfluxDB."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from contract.influx import InfluxV1, quote_str
from contract.settings import Settings
from edge.outbox import read_stats
from firmware_bridge.nmea_gps.simulator import NmeaSimulator
from machi.servers import IngestProcess, Mosquitto
from machi.testkit.wait import wait_for

__all__ = ["EdgeProcess", "EdgeStack", "start_edge_stack"]


class EdgeProcess:
    """``machi edge run --config <file>`` as a child process (tests and this benchmark)."""

    def __init__(self, workdir: Path, doc: dict[str, Any]) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "edge.toml"
        self.config.write_text(tomli_w.dumps(doc))
        self.log = self.workdir / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EdgeProcess:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "machi.cli", "edge", "run", "--config", str(self.config)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut (for the process) would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class EdgeStack:
    """The running stack; :meth:`close` stops every part."""

    tmp: Path
    mq: Mosquitto
    influx: InfluxV1
    ingest: IngestProcess
    sims: dict[str, NmeaSimulator]
    edge: EdgeProcess
    outbox: Path
    devices: tuple[str, ...] = field(default=())

    def stats(self) -> dict[str, Any]:
        return read_stats(self.outbox)

    def committed(self) -> int:
        """Readings the agent has committed to its outbox (the agent must be alive)."""
        assert self.edge.proc and self.edge.proc.poll() is None, self.edge.log.read_text()[-2000:]
        return int(self.stats()["counters"].get("committed_readings", 0))

    def points(self, device: str) -> dict[int, dict[str, Any]]:
        rows = self.influx.rows(
            "SELECT lat, lon, speed_kmh, heading_deg, route_id FROM bus "  # noqa: S608
            f"WHERE device_id = {quote_str(device)}"
        )
        return {r["time"]: r for r in rows}

    def total_points(self) -> int:
        return sum(len(self.points(d)) for d in self.devices)

    def drained(self, timeout: float = 40) -> dict[str, Any]:
        """Wait until the outbox is empty and InfluxDB holds every stored reading."""

        def done() -> dict[str, Any] | None:
            s = self.stats()
            c = s["counters"]
            expect = c.get("committed_readings", 0) - c.get("dropped_readings", 0)
            # Rows dropped after the broker acknowledged them may or may not be stored.
            maybe = c.get("dropped_unconfirmed_readings", 0)
            if s["outbox_depth"] == 0 and expect - maybe <= self.total_points() <= expect:
                return s
            return None

        return wait_for(done, timeout, "outbox drained into InfluxDB")

    def close(self) -> None:
        self.edge.kill()
        for sim in self.sims.values():
            sim.stop()
        self.ingest.kill()
        self.influx.close()


StackT = TypeVar("StackT", bound=EdgeStack)


def start_edge_stack(
    tmp: Path,
    mq: Mosquitto,
    influx_url: str,
    settings: Settings,
    devices: Sequence[str],
    period_s: float,
    *,
    links: Sequence[str] | None = None,
    agent: dict[str, Any] | None = None,
    outbox: dict[str, Any] | None = None,
    max_inflight: int = 100,
    read_timeout_s: float = 0.5,
    ingest_client_id: str = "machi-ingest",
    ingest_batch_s: float = 0.2,
    prepare_outbox: Callable[[Path], None] | None = None,
    cls: type[StackT] = EdgeStack,  # type: ignore[assignment]
) -> StackT:
    """Start ingest, one pty GPS simulator per device (``links`` names their pty links)
    and the agent; ``prepare_outbox`` runs on the outbox path before the agent opens it."""
    influx = InfluxV1(influx_url, settings.influx_db)
    influx.create_database()
    ingest = IngestProcess(
        tmp / "ingest", mq.url, influx_url, settings.influx_db, settings.topic_prefix,
        client_id=ingest_client_id, extra_args=["--batch-seconds", str(ingest_batch_s)],
        open_mode=True,  # the agent's devices are not in a registry here
    )  # fmt: skip
    ingest.start()
    (tmp / "dev").mkdir()
    names = list(links or devices)
    sims = {
        d: NmeaSimulator(tmp / "dev", link_name=link, period_s=period_s).start()
        for d, link in zip(devices, names, strict=True)
    }
    path = tmp / "outbox.db"
    if prepare_outbox is not None:
        prepare_outbox(path)
    doc = {
        "agent": {"id": "edge-test", "site": "kofu", "status_interval_s": 0.5, **(agent or {})},
        "mqtt": {"url": mq.url, "topic_prefix": settings.topic_prefix,
                 "max_inflight": max_inflight},
        # A confirmation lost while the agent or the broker was down is made up for by a
        # re-send after confirm_timeout_s: short, so that drains take seconds, not 2 min.
        "outbox": {"path": str(path), "max_bytes": 10_000_000, "confirm_timeout_s": 3,
                   **(outbox or {})},
        "sources": [
            {
                "type": "nmea_gps",
                "device_id": dev,
                "port": str(sim.path),
                "baudrate": 9600,
                "route_id": "R10",
                "interval_s": read_timeout_s,  # the read timeout, not the fix rate
                "use_gps_time": True,
            }
            for dev, sim in sims.items()
        ],
    }  # fmt: skip
    edge = EdgeProcess(tmp / "edge", doc).start()
    return cls(tmp, mq, influx, ingest, sims, edge, path, tuple(devices))
