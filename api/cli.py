"""``machi api``: serve the KPI API with uvicorn."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from api.boundary_options import BoundaryOptions
from api.disclosure_options import DisclosureOptions
from api.options import ApiOptions
from api.quota import QuotaOptions
from contract.options import add_options, load_options, print_config, settings_of
from portal.options import PortalOptions

if TYPE_CHECKING:
    from contract.influx import InfluxV1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "api",
        help="serve the city KPI API (FastAPI + uvicorn)",
        description="Theme KPIs, sites, devices, care alerts and GTFS-RT vehicle positions "
        "over HTTP. Each flag has a MACHI_* variable; a flag wins over its variable, which "
        "wins over the default.",
    )
    add_options(p, ApiOptions)
    add_options(p, PortalOptions)  # the residents' page (portal/options.py)
    add_options(p, DisclosureOptions)  # care disclosure control (api/disclosure_options.py)
    add_options(p, QuotaOptions)  # public rate limits and the expensive-query cap
    add_options(p, BoundaryOptions)  # the slot-boundary writer (api/boundary_options.py)
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    setup = actions.add_parser(
        "setup-rollups",
        help="create the rollup retention policy and CQs (idempotent) and back-fill them",
    )
    setup.add_argument(
        "--backfill-hours",
        type=float,
        default=25.0,
        help="recompute the rollups for this many past hours (default 25; 0 = none)",
    )
    setup.set_defaults(func=run_setup)
    again = actions.add_parser(
        "rollup",
        help="recompute the rollups for a time range now (data later than the 1 h window)",
    )
    again.add_argument("--start", required=True, help="RFC 3339 start, e.g. 2024-05-01T00:00:00Z")
    again.add_argument("--end", required=True, help="RFC 3339 end (exclusive)")
    again.set_defaults(func=run_rollup)


def _influx(args: argparse.Namespace) -> InfluxV1:
    from contract.influx import InfluxV1

    # The connection flags belong to `machi api` itself: `machi api --influx-url U rollup`.
    return InfluxV1.from_settings(settings_of(load_options(ApiOptions, args)), timeout=600.0)


def setup_rollups(influx: InfluxV1, backfill_hours: float, only_if_new: bool) -> None:
    """Create the CQs (idempotent), then back-fill (at start-up only if just created)."""
    from datetime import UTC, datetime, timedelta

    from api import rollups

    done = rollups.setup(influx)
    for line in done:
        print(f"machi api: {line}")
    if backfill_hours > 0 and (done or not only_if_new):
        end = datetime.now(UTC)
        written = rollups.run(influx, end - timedelta(hours=backfill_hours), end)
        print(
            f"machi api: rolled up the last {backfill_hours:g} h "
            f"({written:,} rollup and slot-boundary points)"
        )


def run_setup(args: argparse.Namespace) -> int:
    with_influx = _influx(args)
    try:
        setup_rollups(with_influx, args.backfill_hours, only_if_new=False)
    finally:
        with_influx.close()
    return 0


def run_rollup(args: argparse.Namespace) -> int:
    from api import rollups
    from api.timeparse import TimeError, parse_time
    from contract.settings import ConfigError

    try:
        start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    except TimeError as exc:
        raise ConfigError(str(exc)) from None
    if start >= end:
        raise ConfigError("--start must be before --end")
    influx = _influx(args)
    try:
        written = rollups.run(influx, start, end)
    finally:
        influx.close()
    print(
        f"machi api: recomputed the rollups and slot boundaries for [{args.start}, {args.end}):"
        f" {written:,} points"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    import httpx

    from api.app import create_app
    from contract.influx import InfluxError

    opts = load_options(ApiOptions, args)
    portal = load_options(PortalOptions, args)
    disclosure = load_options(DisclosureOptions, args)
    quotas = load_options(QuotaOptions, args)
    bounds = load_options(BoundaryOptions, args)
    if args.print_config:
        more = {**portal.redacted(), **disclosure.redacted(), **quotas.redacted()}
        return print_config(opts, **more, **bounds.redacted())
    cfg = opts.api_config()
    app = create_app(
        settings_of(opts),
        cfg,
        opts.kpi_config(),
        alerts_db=opts.alerts_db,
        portal=portal,
        disclosure=disclosure,
        quotas=quotas,
        boundaries=bounds,
    )
    if opts.rollups:
        influx = _influx(args)
        try:
            setup_rollups(influx, 25.0, only_if_new=True)
        except (InfluxError, httpx.HTTPError) as exc:
            # The API still serves (from raw points); the operator can retry later.
            print(
                f"machi api: could not set up the rollups ({exc}); KPIs read raw points. "
                "Once InfluxDB and the database exist, run `machi api setup-rollups`."
            )
        finally:
            influx.close()
    if not len(app.state.api.keys) and not cfg.anonymous:
        print(
            "machi api: no API keys configured and anonymous access is off, so every request "
            "will get 401. Set MACHI_API_KEYS='key:scope,...' or MACHI_API_ANONYMOUS=1."
        )
    serve(app, cfg.host, cfg.port)
    return 0


def serve(app: object, host: str, port: int) -> None:
    """Run uvicorn; a port that cannot be bound is one clear line (exit code 2)."""
    import socket

    import uvicorn

    from contract.settings import ConfigError

    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise ConfigError(
            f"--port / MACHI_API_PORT: cannot listen on {host}:{port} ({exc.strerror}); "
            "is another machi api running? choose another port"
        ) from None
    # Accepted sockets inherit TCP_NODELAY; without it every answer waited ~40 ms for
    # the client's delayed ACK (Nagle), measured by `machi bench api`'s flood case.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    config = uvicorn.Config(app, log_level="warning", access_log=False)  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=[sock])
