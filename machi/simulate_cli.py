"""``machi simulate``: publish a simulated city fleet's telemetry."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="publish simulated meters, wearables and buses")
    p.add_argument("--mqtt-url", help="broker URL [MACHI_MQTT_URL]")
    p.add_argument("--topic-prefix", help="topic prefix [MACHI_TOPIC_PREFIX]")
    p.add_argument("--meters", type=int, default=20)
    p.add_argument("--wearables", type=int, default=20)
    p.add_argument("--buses", type=int, default=4)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("--per-message", type=int, default=1, help="readings packed per message")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contract.settings import Settings
    from machi.simulate import Fleet, run_simulation

    settings = Settings.from_env(mqtt_url=args.mqtt_url, topic_prefix=args.topic_prefix)
    fleet = Fleet.build(args.meters, args.wearables, args.buses, seed=args.seed)
    stats = run_simulation(settings, fleet, args.interval, args.per_message, args.duration)
    print(f"published {stats.messages} messages, {stats.readings} readings (all acknowledged)")
    return 0
