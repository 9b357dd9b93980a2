"""``machi events run``: the derived-events worker (care alerts, bus arrivals)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from contract.settings import add_connection_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="derive care alerts and bus arrivals from telemetry")
    cmds = p.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    r = cmds.add_parser(
        "run",
        help="run the events worker",
        description="Subscribe to wearable and bus telemetry and write care_alert and "
        "bus_arrival points to InfluxDB. Flags override MACHI_* variables.",
    )
    add_connection_args(r, "mqtt", "influx", "db", "prefix")
    r.add_argument("--client-id", default="machi-events", help="persistent session id")
    r.add_argument("--gtfs", type=Path, help="GTFS static zip for bus arrivals [MACHI_GTFS]")
    r.add_argument("--radius-m", type=float, default=50.0, help="stop radius (default 50 m)")
    r.add_argument("--hr-low", type=float, help="bpm [MACHI_CARE_HR_LOW, default 50]")
    r.add_argument("--hr-high", type=float, help="bpm [MACHI_CARE_HR_HIGH, default 120]")
    r.add_argument("--hr-sustain-s", type=float, help="seconds [MACHI_CARE_HR_SUSTAIN_S, 60]")
    r.add_argument("--spo2-low", type=float, help="percent [MACHI_CARE_SPO2_LOW, default 90]")
    _add_binding_options(r)  # i10: --registry / --open-mode (ingest/binding.py)
    r.set_defaults(func=run)


def _add_binding_options(p: argparse.ArgumentParser) -> None:
    from contract.options import add_options
    from ingest.binding import BindingOptions

    add_options(p, BindingOptions)


def run(args: argparse.Namespace) -> int:
    from contract.settings import ConfigError, env_float, settings_from_args
    from ingest.events.care import CareRules
    from ingest.events.gtfs import GtfsError, Schedule
    from ingest.events.worker import EventsOptions, EventsWorker

    settings = settings_from_args(args)

    def num(flag: float | None, name: str, default: float) -> float:
        return flag if flag is not None else env_float(name, default)

    try:
        rules = CareRules(
            hr_low_bpm=num(args.hr_low, "MACHI_CARE_HR_LOW", 50),
            hr_high_bpm=num(args.hr_high, "MACHI_CARE_HR_HIGH", 120),
            hr_sustain_s=num(args.hr_sustain_s, "MACHI_CARE_HR_SUSTAIN_S", 60),
            spo2_low_pct=num(args.spo2_low, "MACHI_CARE_SPO2_LOW", 90),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    gtfs = args.gtfs or (Path(os.environ["MACHI_GTFS"]) if os.environ.get("MACHI_GTFS") else None)
    schedule = None
    if gtfs is not None:
        try:
            schedule = Schedule.load(gtfs)
        except GtfsError as exc:
            raise ConfigError(str(exc)) from None
    from contract.options import load_options, print_config  # i10
    from ingest.binding import BindingOptions  # i10

    binding_opts = load_options(BindingOptions, args)  # i10
    if args.print_config:  # i10: only the option-table options so far
        return print_config(binding_opts)
    worker = EventsWorker(
        settings,
        rules,
        schedule,
        EventsOptions(client_id=args.client_id, radius_m=args.radius_m),
        binding_opts.binding(),  # i10: exits 2 without a registry or open mode
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    worker.start()
    done.wait()
    worker.stop()
    return 0
