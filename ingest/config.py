"""Ingest settings: ``contract.settings.Settings`` plus the knobs of the pipeline."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from contract.schema import Limits
from contract.settings import Settings, env, env_bool, env_int


@dataclass(frozen=True)
class IngestConfig:
    settings: Settings
    client_id: str = "machi-ingest"
    shared_group: str | None = None
    protocol: int = 5
    batch_lines: int = 5000
    batch_s: float = 1.0
    writers: int = 2
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

    @classmethod
    def from_env(cls, settings: Settings, **overrides: object) -> IngestConfig:
        values: dict[str, object] = {
            "client_id": env("MACHI_INGEST_CLIENT_ID", cls.client_id),
            "shared_group": os.environ.get("MACHI_INGEST_SHARED_GROUP") or None,
            "protocol": env_int("MACHI_MQTT_PROTOCOL", cls.protocol),
            "batch_lines": env_int("MACHI_INGEST_BATCH_LINES", cls.batch_lines),
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
