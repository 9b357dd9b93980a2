"""``machi bench TARGET``: benchmark scripts (not timed tests).

Each prints its figures and a ratio against a ceiling measured in the same run. Targets
are modules in this package exposing ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "ingest": (
        "machi.bench.ingest",
        "MQTT -> InfluxDB throughput and latency vs the write ceiling",
    ),
    "api": ("machi.bench.api", "KPI API latency over 1,000 devices"),
    "edge": ("machi.bench.edge", "edge agent RSS and CPU at 100 readings/s"),
    "alerts": ("machi.bench.alerts", "fall -> email + webhook latency under 1,000 wearables"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark script")
    targets = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, (module, help_text) in TARGETS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue
        tp = targets.add_parser(name, help=help_text)
        mod.add_arguments(tp)
        tp.set_defaults(func=mod.run)
