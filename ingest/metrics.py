"""Prometheus metrics of an ingest worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "machi_ingest_messages", "MQTT messages received, by outcome", ["outcome"], registry=r
        )
        self.readings = Counter("machi_ingest_readings", "Readings stored in InfluxDB", registry=r)
        self.rejects = Counter(
            "machi_ingest_rejects", "Messages dead-lettered, by reason", ["reason"], registry=r
        )
        self.site_rewrites = Counter(
            "machi_ingest_site_rewrites",
            "Agent-published messages stored under the device's registered site instead of "
            "the site they claimed",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "machi_ingest_batch_write_seconds",
            "Time to store one batch, retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.batch_lines = Histogram(
            "machi_ingest_batch_lines",
            "Lines per batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.lag = Gauge(
            "machi_ingest_lag_seconds", "Now minus the newest stored reading's time", registry=r
        )
        self.pending = Gauge(
            "machi_ingest_pending_lines", "Lines received but not yet stored", registry=r
        )
        self.retries = Counter(
            "machi_ingest_write_retries", "Write attempts that will be retried", registry=r
        )
        self.connected = Gauge("machi_ingest_mqtt_connected", "1 while connected", registry=r)
