"""``machi ingest``'s option table: one declaration per option (see contract.options)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from contract.options import ConnectionOptions, option, settings_of
from contract.schema import Limits
from ingest.binding import BindingOptions
from ingest.config import IngestConfig, parse_workers

__all__ = ["IngestOptions"]


class IngestOptions(ConnectionOptions, BindingOptions):
    """Options of an ingest worker; :meth:`config` turns them into an :class:`IngestConfig`."""

    client_id: str = option(
        "machi-ingest",
        env="MACHI_INGEST_CLIENT_ID",
        help="fixed MQTT client id of this worker's persistent session",
    )
    shared_group: str | None = option(
        None,
        env="MACHI_INGEST_SHARED_GROUP",
        help="share the subscription with other workers ($share/GROUP/...)",
    )
    mqtt_protocol: int = option(
        5, env="MACHI_MQTT_PROTOCOL", help="MQTT protocol version: 5 or 311"
    )
    batch_lines: int = option(
        5000, env="MACHI_INGEST_BATCH_LINES", ge=1, le=1_000_000, help="lines per InfluxDB write"
    )
    batch_seconds: float = option(
        1.0, env="MACHI_INGEST_BATCH_S", gt=0, le=60, help="seal a batch after this many seconds"
    )
    writers: int = option(2, env="MACHI_INGEST_WRITERS", ge=1, le=64, help="concurrent writes")
    workers: str = option(
        "1",
        env="MACHI_INGEST_WORKERS",
        help="ingest processes sharing one subscription: a number or 'auto' (one per core "
        "beyond two)",
    )
    gzip: bool = option(True, env="MACHI_INGEST_GZIP", help="gzip request bodies")
    dead_letter_file: Path = option(
        Path("machi-deadletter.jsonl"),
        env="MACHI_DEAD_LETTER_FILE",
        help="JSONL file of rejected messages (fsynced before the ack)",
    )
    dead_letter_topic: bool = option(
        False,
        env="MACHI_DEAD_LETTER_TOPIC",
        help="also publish rejects to {prefix}/v1/deadletter/{reason}",
    )
    metrics_port: int = option(
        9464,
        env="MACHI_METRICS_PORT",
        ge=-1,
        le=65535,
        help="Prometheus port on --metrics-host (0 = any free port, -1 = off)",
    )
    metrics_host: str = option(
        "127.0.0.1", env="MACHI_METRICS_HOST", help="address of the metrics server"
    )
    stats_interval: float = option(
        10.0,
        env="MACHI_INGEST_STATS_INTERVAL",
        gt=0,
        le=3600,
        help="seconds between ingest_stats points",
    )
    confirm: bool = option(
        True,
        env="MACHI_INGEST_CONFIRM",
        help="publish storage confirmations on {prefix}/v1/stored/{device_id}; off for "
        "brokers whose ACL lacks that grant",
    )
    max_past_s: int = option(
        Limits.max_past_ms // 1000,
        env="MACHI_MAX_PAST_S",
        ge=1,
        help="oldest accepted reading age in seconds",
    )
    max_future_s: int = option(
        Limits.max_future_ms // 1000,
        env="MACHI_MAX_FUTURE_S",
        ge=0,
        le=86400,
        help="furthest accepted future reading time in seconds",
    )

    @field_validator("mqtt_protocol")
    @classmethod
    def _known_protocol(cls, v: int) -> int:
        if v not in (5, 311):
            raise ValueError("must be 5 or 311")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: str) -> str:
        parse_workers(v)  # ValueError: the option table names the option
        return v

    def config(self) -> IngestConfig:
        return IngestConfig(
            settings=settings_of(self),
            client_id=self.client_id,
            shared_group=self.shared_group,
            protocol=self.mqtt_protocol,
            batch_lines=self.batch_lines,
            batch_s=self.batch_seconds,
            writers=self.writers,
            workers=parse_workers(self.workers),
            gzip=self.gzip,
            dead_letter_file=self.dead_letter_file,
            dead_letter_topic=self.dead_letter_topic,
            metrics_port=None if self.metrics_port < 0 else self.metrics_port,
            metrics_host=self.metrics_host,
            stats_interval_s=self.stats_interval,
            limits=Limits(
                max_past_ms=self.max_past_s * 1000, max_future_ms=self.max_future_s * 1000
            ),
            confirm=self.confirm,
            registry=self.registry,
            open_mode=self.open_mode,
        )
