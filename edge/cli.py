"""``machi edge run|status|check --config edge.toml``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from edge.agent import Agent
    from edge.config import load_config
    from edge.outbox import OutboxError

    try:
        agent = Agent(load_config(args.config))
    except OutboxError as exc:
        print(f"machi edge run: {exc}", file=sys.stderr)
        return 1

    def _stop(signum: int, _frame: Any) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run()
    return 0


def _status(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.outbox import OutboxError, read_stats

    cfg = load_config(args.config)
    try:
        stats = read_stats(cfg.outbox_path)
    except OutboxError as exc:
        print(f"machi edge status: {exc}", file=sys.stderr)
        return 1
    stats["agent_id"] = cfg.agent_id
    stats["rejects_file"] = str(cfg.rejects_path)
    json.dump(stats, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def _check(args: argparse.Namespace) -> int:
    from edge.agent import default_factory
    from edge.config import load_config

    cfg = load_config(args.config)
    for spec in cfg.sources:
        default_factory(spec.raw)  # drivers check their own keys; nothing is opened
    print(f"{args.config}: OK ({len(cfg.sources)} sources, agent {cfg.agent_id})")
    return 0


#: Source keys whose values are credentials: B-route id and password, any password,
#: secret or token. URLs keep their host but lose a password (``mqtt_url``).
_SECRET_KEYS = ("password", "secret", "token", "broute_id")


def _redacted(key: str, value: object) -> object:
    if any(word in key for word in _SECRET_KEYS):
        return "***"
    if isinstance(value, str) and "://" in value:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
    return value


def _print_config(args: argparse.Namespace) -> int:
    """The effective configuration as JSON, secrets redacted."""
    import dataclasses

    from edge.config import load_config

    cfg = load_config(args.config)
    doc = dataclasses.asdict(cfg)
    doc["settings"]["mqtt_url"] = cfg.settings.mqtt.redacted()
    for src in doc["sources"]:
        raw = src["raw"]
        for key, value in list(raw.items()):
            raw[key] = _redacted(key, value)
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("edge", help="edge agent: devices -> durable outbox -> MQTT")
    cmds = p.add_subparsers(dest="edge_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("run", _run, "run the agent until SIGTERM/SIGINT"),
        ("status", _status, "print outbox depth, bytes, counters and seqs as JSON"),
        ("check", _check, "validate the config file and every source's settings"),
    ):
        c = cmds.add_parser(name, help=text)
        c.add_argument(
            "--config", required=True, help="edge TOML file (see edge/samples/edge.toml)"
        )
        c.add_argument(
            "--print-config",
            action="store_const",
            const=_print_config,
            dest="func",
            help="print the effective configuration as JSON (secrets redacted) and exit",
        )
        c.set_defaults(func=func)
