"""``machi alerts run`` (the delivery component) and ``machi alerts check`` (rules only)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import TYPE_CHECKING

from contract.options import add_options, load_options, print_config
from contract.settings import ConfigError

if TYPE_CHECKING:
    from alerts.options import AlertsOptions
    from alerts.rules import Rules

log = logging.getLogger("machi.alerts")


def register(sub: argparse._SubParsersAction) -> None:
    from alerts.options import AlertsOptions

    p = sub.add_parser("alerts", help="deliver care and device alerts, escalate until acked")
    cmds = p.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")
    r = cmds.add_parser(
        "run",
        help="run an alerts instance (two may run: one leads, one stands by)",
        description="Take alert episodes from {prefix}/v1/alerts/+/+, route them by the "
        "rules file, notify tier by tier until someone acknowledges. Each flag has a "
        "MACHI_* variable; a flag wins over its variable, which wins over the default.",
    )
    add_options(r, AlertsOptions)
    r.set_defaults(func=run)
    c = cmds.add_parser("check", help="check a rules file and exit (0 = usable)")
    add_options(c, AlertsOptions, only=["rules"])
    c.set_defaults(func=check)


def _rules(args: argparse.Namespace) -> tuple[AlertsOptions, Rules]:
    from alerts.options import AlertsOptions
    from alerts.rules import load_rules

    opts = load_options(AlertsOptions, args)
    if opts.rules is None:
        raise ConfigError(
            "no rules file: give --rules FILE or MACHI_ALERT_RULES (see alerts/samples/rules.toml)"
        )
    return opts, load_rules(opts.rules)


def check(args: argparse.Namespace) -> int:
    from alerts.rules import describe

    opts, rules = _rules(args)
    if args.print_config:
        return print_config(opts, routes=describe(rules))
    print(f"{opts.rules}: {len(rules.routes)} route(s), {len(set(rules.urls()))} recipient(s): ok")
    return 0


def run(args: argparse.Namespace) -> int:
    from alerts.channels import HMAC_SCHEMES, scheme_of
    from alerts.rules import describe
    from alerts.service import AlertsService

    opts, rules = _rules(args)
    if args.print_config:
        return print_config(opts, routes=describe(rules))
    if opts.hmac_secret is None and any(scheme_of(u) in HMAC_SCHEMES for u in rules.urls()):
        raise ConfigError(
            f"rules file {opts.rules} uses hmac+http(s):// but MACHI_ALERTS_HMAC_SECRET is not set"
        )
    for t in rules.unrouted_types():
        log.warning("no route for alert type", extra={"fields": {"type": t}})
    service = AlertsService(opts, rules)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    service.start()
    done.wait()
    service.stop()
    return 0
