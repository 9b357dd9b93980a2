"""``machi api``: serve the KPI API with uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "api",
        help="serve the city KPI API (FastAPI + uvicorn)",
        description="Theme KPIs, sites, devices, care alerts and GTFS-RT vehicle positions "
        "over HTTP. Every flag also reads a MACHI_* environment variable; flags win.",
    )
    p.add_argument("--host", help="bind address [MACHI_API_HOST, default 127.0.0.1]")
    p.add_argument("--port", type=int, help="port [MACHI_API_PORT, default 8000]")
    p.add_argument("--influx-url", help="InfluxDB URL [MACHI_INFLUX_URL]")
    p.add_argument("--influx-db", help="database [MACHI_INFLUX_DB]")
    p.add_argument("--keys-file", help="file of 'key:scope' lines [MACHI_API_KEYS_FILE]")
    p.add_argument(
        "--anonymous",
        action="store_true",
        default=None,
        help="serve public aggregates without a key [MACHI_API_ANONYMOUS=1]",
    )
    p.add_argument("--audit-log", type=Path, help="care-access audit JSONL [MACHI_API_AUDIT_LOG]")
    p.add_argument(
        "--cache-ttl", type=float, help="seconds to cache KPI answers [MACHI_API_CACHE_TTL]"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.config import ApiConfig, KpiConfig
    from contract.settings import Settings

    settings = Settings.from_env(influx_url=args.influx_url, influx_db=args.influx_db)
    cfg = ApiConfig.from_env(
        host=args.host,
        port=args.port,
        keys_file=args.keys_file,
        anonymous=args.anonymous,
        audit_log=args.audit_log,
        cache_ttl_s=args.cache_ttl,
    )
    app = create_app(settings, cfg, KpiConfig.from_env())
    if not len(app.state.api.keys) and not cfg.anonymous:
        print(
            "machi api: no API keys configured and anonymous access is off, so every request "
            "will get 401. Set MACHI_API_KEYS='key:scope,...' or MACHI_API_ANONYMOUS=1."
        )
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    return 0
