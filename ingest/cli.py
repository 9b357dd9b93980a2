"""``machi ingest``: run an ingest worker."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from contract.options import add_options, load_options, print_config

if TYPE_CHECKING:
    from ingest.config import IngestConfig


def register(sub: argparse._SubParsersAction) -> None:
    from ingest.options import IngestOptions

    p = sub.add_parser(
        "ingest",
        help="stream MQTT telemetry into InfluxDB (exactly one point per reading)",
        description="Subscribe to contract v1 telemetry and store it in InfluxDB. Each flag "
        "has a MACHI_* variable; a flag wins over its variable, which wins over the default.",
    )
    add_options(p, IngestOptions)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> IngestConfig:
    from ingest.options import IngestOptions

    return load_options(IngestOptions, args).config()


def run(args: argparse.Namespace) -> int:
    import sys

    from contract.settings import ConfigError
    from ingest.binding import load_binding
    from ingest.options import IngestOptions
    from ingest.service import IngestService
    from ingest.workers import run_workers

    opts = load_options(IngestOptions, args)
    if args.print_config:
        return print_config(opts)
    cfg = opts.config()
    if cfg.workers > 1:
        argv = sys.argv[1:]
        if "ingest" not in argv:
            raise ConfigError("--workers above 1 needs ingest started as `machi ingest ...`")
        load_binding(cfg.registry, cfg.open_mode)  # a bad registry stops here, once
        return run_workers(cfg, cfg.workers, argv)
    IngestService(cfg).run_forever()
    return 0
