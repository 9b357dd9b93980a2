"""``machi``: one CLI, one subcommand per component.

Each component module exposes ``register(subparsers)``; heavy imports happen only when
a subcommand runs, so ``machi --help`` stays fast on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from contract.settings import ConfigError

# (subcommand, module with register())
COMMANDS: list[tuple[str, str]] = [
    ("ingest", "ingest.cli"),
    ("simulate", "machi.simulate_cli"),
    ("demo", "machi.demo"),
    ("bench", "machi.bench"),
    ("edge", "edge.cli"),
    ("api", "api.cli"),
    ("events", "ingest.events.cli"),
    ("dashboards", "dashboards.cli"),
    ("devices", "devices.cli"),
    ("alerts", "alerts.cli"),
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("machi")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="machi", description="machi: the city IoT data platform, one subcommand per component."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--version", action="version", version=f"machi {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _name, module in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue  # component not installed in this build
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from contract.logs import setup_logging

    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"machi {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("machi").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
