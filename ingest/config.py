"""Ingest settings: ``contract.settings.Settings`` plus the knobs of the pipeline."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from contract.schema import Limits
from contract.settings import ConfigError, Settings, env, env_bool, env_int

MAX_WORKERS = 32


def resolve_workers(value: str, cpus: int | None = None) -> int:
    """``auto`` or a count. ``auto`` is one worker per core beyond the first two, at
    least one: on 2 cores a second worker competes with Mosquitto and InfluxDB for the
    same cores and gained nothing (docs/benchmarks.md)."""
    if value == "auto":
        n = cpus if cpus is not None else (os.cpu_count() or 1)
        return max(1, min(MAX_WORKERS, n - 2))
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(
            f"--workers/MACHI_INGEST_WORKERS must be 'auto' or a whole number, got {value!r}"
        ) from None
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"--workers/MACHI_INGEST_WORKERS must be between 1 and {MAX_WORKERS}")
    return n


#: field -> (option names in messages, lowest, highest) of the numeric knobs.
_BOUNDS: dict[str, tuple[str, float, float]] = {
    "batch_lines": ("--batch-lines/MACHI_INGEST_BATCH_LINES", 1, 1_000_000),
    "batch_s": ("--batch-seconds", 0.001, 3600),
    "writers": ("--writers", 1, 64),
    "workers": ("--workers/MACHI_INGEST_WORKERS", 1, MAX_WORKERS),
    "max_pending_batches": ("max_pending_batches", 1, 1000),
    "receive_maximum": ("receive_maximum", 1, 65535),
    "metrics_port": ("--metrics-port/MACHI_METRICS_PORT", -1, 65535),
    "stats_interval_s": ("--stats-interval", 0.01, 86400),
    "max_retry_s": ("max_retry_s", 0.01, 3600),
}


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

    def __post_init__(self) -> None:
        """Refuse out-of-range values at start, naming the option and its bounds."""
        for name, (option, lo, hi) in _BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise ConfigError(f"{option} must be between {lo:g} and {hi:g}, got {value}")
        if self.protocol not in (5, 311):
            raise ConfigError(
                f"--mqtt-protocol/MACHI_MQTT_PROTOCOL must be 5 or 311, got {self.protocol}"
            )
        if self.limits.max_past_ms < 0:
            raise ConfigError("--max-past-s/MACHI_MAX_PAST_S must be >= 0")
        if self.limits.max_future_ms < 0:
            raise ConfigError("--max-future-s/MACHI_MAX_FUTURE_S must be >= 0")

    @classmethod
    def from_env(cls, settings: Settings, **overrides: object) -> IngestConfig:
        values: dict[str, object] = {
            "client_id": env("MACHI_INGEST_CLIENT_ID", cls.client_id),
            "shared_group": os.environ.get("MACHI_INGEST_SHARED_GROUP") or None,
            "protocol": env_int("MACHI_MQTT_PROTOCOL", cls.protocol),
            "batch_lines": env_int("MACHI_INGEST_BATCH_LINES", cls.batch_lines),
            "workers": resolve_workers(env("MACHI_INGEST_WORKERS", str(cls.workers))),
            "dead_letter_file": Path(env("MACHI_DEAD_LETTER_FILE", str(cls.dead_letter_file))),
            "metrics_port": env_int("MACHI_METRICS_PORT", 9464),
            "confirm": env_bool("MACHI_INGEST_CONFIRM", cls.confirm),
            "limits": Limits(
                max_past_ms=env_int("MACHI_MAX_PAST_S", Limits.max_past_ms // 1000) * 1000,
                max_future_ms=env_int("MACHI_MAX_FUTURE_S", Limits.max_future_ms // 1000) * 1000,
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(settings=settings, **values)  # type: ignore[arg-type]
