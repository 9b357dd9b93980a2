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
    from ingest.options import IngestOptions
    from ingest.service import IngestService

    opts = load_options(IngestOptions, args)
    if args.print_config:
        return print_config(opts)
    IngestService(opts.config()).run_forever()
    return 0
