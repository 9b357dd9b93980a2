"""``machi ingest``: run an ingest worker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from contract.settings import add_connection_args

if TYPE_CHECKING:
    from ingest.config import IngestConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="stream MQTT telemetry into InfluxDB (exactly one point per reading)",
        description="Subscribe to contract v1 telemetry and store it in InfluxDB. "
        "Every flag also reads a MACHI_* environment variable; flags win.",
    )
    add_connection_args(p, "mqtt", "influx", "db", "prefix")
    p.add_argument("--client-id", help="fixed MQTT client id of this worker's persistent session")
    p.add_argument(
        "--shared-group", help="share the subscription with other workers ($share/GROUP/...)"
    )
    p.add_argument("--mqtt-protocol", type=int, choices=(5, 311), help="MQTT version (default 5)")
    p.add_argument("--batch-lines", type=int, help="lines per write (default 5000)")
    p.add_argument("--batch-seconds", type=float, help="seal a batch after this long (default 1)")
    p.add_argument("--writers", type=int, help="concurrent write requests (default 2)")
    p.add_argument(
        "--workers",
        help="ingest processes sharing one subscription: a number or 'auto' (one per core "
        "beyond two; default 1) [MACHI_INGEST_WORKERS]",
    )
    p.add_argument("--no-gzip", action="store_true", help="send uncompressed bodies")
    p.add_argument("--dead-letter-file", type=Path, help="JSONL file of rejected messages")
    p.add_argument(
        "--dead-letter-topic",
        action="store_true",
        help="also publish rejects to {prefix}/v1/deadletter/{reason}",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="Prometheus port on 127.0.0.1 (0 = any free port, -1 = off)",
    )
    p.add_argument("--metrics-host", help="address for the metrics server (default 127.0.0.1)")
    p.add_argument(
        "--stats-interval", type=float, help="seconds between ingest_stats points (default 10)"
    )
    p.add_argument(
        "--confirm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="publish storage confirmations on {prefix}/v1/stored/{device_id} after each "
        "stored batch; --no-confirm for brokers whose ACL lacks that grant "
        "(default on) [MACHI_INGEST_CONFIRM]",
    )
    p.add_argument("--max-past-s", type=int, help="oldest accepted reading age (default 30 days)")
    p.add_argument("--max-future-s", type=int, help="furthest accepted future time (default 300 s)")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    from contract.schema import Limits
    from contract.settings import settings_from_args
    from ingest.config import IngestConfig, resolve_workers

    settings = settings_from_args(args)
    limits = None
    if args.max_past_s is not None or args.max_future_s is not None:
        limits = Limits(
            max_past_ms=(args.max_past_s or Limits.max_past_ms // 1000) * 1000,
            max_future_ms=(args.max_future_s if args.max_future_s is not None else 300) * 1000,
        )
    metrics_port = args.metrics_port
    return IngestConfig.from_env(
        settings,
        client_id=args.client_id,
        shared_group=args.shared_group,
        protocol=args.mqtt_protocol,
        batch_lines=args.batch_lines,
        batch_s=args.batch_seconds,
        writers=args.writers,
        workers=resolve_workers(args.workers) if args.workers else None,
        gzip=False if args.no_gzip else None,
        dead_letter_file=args.dead_letter_file,
        dead_letter_topic=True if args.dead_letter_topic else None,
        metrics_port=metrics_port,
        metrics_host=args.metrics_host,
        stats_interval_s=args.stats_interval,
        limits=limits,
        confirm=args.confirm,
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from contract.settings import ConfigError
    from ingest.service import IngestService
    from ingest.workers import run_workers

    cfg = config_from_args(args)
    if cfg.metrics_port is not None and cfg.metrics_port < 0:
        import dataclasses

        cfg = dataclasses.replace(cfg, metrics_port=None)
    if cfg.workers > 1:
        argv = sys.argv[1:]
        if "ingest" not in argv:
            raise ConfigError("--workers above 1 needs ingest started as `machi ingest ...`")
        return run_workers(cfg, cfg.workers, argv)
    IngestService(cfg).run_forever()
    return 0
