"""``machi events run``: the derived-events worker (care alerts, bus arrivals)."""

from __future__ import annotations

import argparse
import signal
import threading

from contract.options import add_options, load_options, print_config, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    from ingest.events.options import EventsRunOptions

    p = sub.add_parser("events", help="derive care alerts and bus arrivals from telemetry")
    cmds = p.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    r = cmds.add_parser(
        "run",
        help="run the events worker",
        description="Subscribe to wearable and bus telemetry and write care_alert and "
        "bus_arrival points to InfluxDB. Each flag has a MACHI_* variable; a flag wins over "
        "its variable, which wins over the default.",
    )
    add_options(r, EventsRunOptions)
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from contract.settings import ConfigError
    from ingest.events.gtfs import GtfsError, Schedule
    from ingest.events.options import EventsRunOptions
    from ingest.events.worker import EventsOptions, EventsWorker

    opts = load_options(EventsRunOptions, args)
    rules = opts.care_rules()
    if args.print_config:
        return print_config(opts)
    schedule = None
    if opts.gtfs is not None:
        try:
            schedule = Schedule.load(opts.gtfs)
        except GtfsError as exc:
            raise ConfigError(f"--gtfs / MACHI_GTFS: {exc}") from None
    worker = EventsWorker(
        settings_of(opts),
        rules,
        schedule,
        EventsOptions(client_id=opts.client_id, radius_m=opts.radius_m),
        opts.device_rules(),
        opts.binding(),  # device binding; exits 2 without a registry or open mode
    )
    done = threading.Event()

    def _stop(*_: object) -> None:
        done.set()
        worker.request_stop()  # also ends a wait for an unreachable InfluxDB

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.start()
    done.wait()
    worker.stop()
    return 0
