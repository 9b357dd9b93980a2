"""``machi simulate``: publish a simulated city fleet's telemetry."""

from __future__ import annotations

import argparse

from contract.options import MqttOptions, add_options, load_options, print_config, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="publish simulated meters, wearables and buses")
    add_options(p, MqttOptions)
    p.add_argument("--meters", type=int, default=20)
    p.add_argument("--wearables", type=int, default=20)
    p.add_argument("--buses", type=int, default=4)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("--per-message", type=int, default=1, help="readings packed per message")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from machi.simulate import Fleet, run_simulation

    opts = load_options(MqttOptions, args)
    if args.print_config:
        return print_config(opts, meters=args.meters, wearables=args.wearables, buses=args.buses)
    settings = settings_of(opts)
    fleet = Fleet.build(args.meters, args.wearables, args.buses, seed=args.seed)
    stats = run_simulation(settings, fleet, args.interval, args.per_message, args.duration)
    print(f"published {stats.messages} messages, {stats.readings} readings (all acknowledged)")
    return 0
