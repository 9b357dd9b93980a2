"""Ingest's runtime configuration, built from the option table (``ingest/options.py``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from contract.schema import Limits
from contract.settings import ConfigError, Settings

MAX_WORKERS = 32


def parse_workers(value: str, cpus: int | None = None) -> int:
    """``auto`` or a count; ValueError saying what is allowed (the option table's
    validator adds the option's name). ``auto`` is one worker per core beyond the first
    two, at least one: on 2 cores a second worker competes with Mosquitto and InfluxDB
    for the same cores and gained nothing (docs/benchmarks.md)."""
    if value == "auto":
        n = cpus if cpus is not None else (os.cpu_count() or 1)
        return max(1, min(MAX_WORKERS, n - 2))
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"must be 'auto' or a whole number, got {value!r}") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"must be between 1 and {MAX_WORKERS}")
    return n


def resolve_workers(value: str, cpus: int | None = None) -> int:
    """:func:`parse_workers` for callers outside the option table (the benchmark)."""
    try:
        return parse_workers(value, cpus)
    except ValueError as exc:
        raise ConfigError(f"--workers/MACHI_INGEST_WORKERS {exc}") from None


@dataclass(frozen=True)
class IngestConfig:
    settings: Settings
    client_id: str = "machi-ingest"
    shared_group: str | None = None
    protocol: int = 5
    batch_lines: int = 5000
    batch_s: float = 1.0
    writers: int = 2
    # Processes on one shared subscription (ingest/workers.py); 1 = this process alone.
    workers: int = 1
    max_pending_batches: int = 8
    # MQTT 5 Receive Maximum: how many unacknowledged messages the broker may hand us.
    receive_maximum: int = 20000
    gzip: bool = True
    dead_letter_file: Path = Path("machi-deadletter.jsonl")
    dead_letter_topic: bool = False
    metrics_port: int | None = 9464
    metrics_host: str = "127.0.0.1"
    stats_interval_s: float = 10.0
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    limits: Limits = Limits()
    max_retry_s: float = 30.0
    # Publish {prefix}/v1/stored/{device_id} after each stored batch (contract §7).
    confirm: bool = True
    # Device binding (ingest/binding.py): the registry file, or explicitly open mode.
    registry: Path | None = None
    open_mode: bool = False
