"""``machi dashboards export|deploy|verify``: Grafana dashboards as code."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contract.options import add_options, load_options, print_config, settings_of
from contract.settings import ConfigError
from dashboards.options import DashboardOptions, DeployOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboards", help="export, deploy or verify the Grafana dashboards")
    sub = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")

    e = sub.add_parser("export", help="regenerate dashboards/json/ from the code")
    e.add_argument("--out", type=Path, help="directory (default: the package's json/)")
    e.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    e.set_defaults(func=_export)

    d = sub.add_parser("deploy", help="push datasource, folders and dashboards to Grafana")
    add_options(d, DeployOptions)
    d.add_argument(
        "--rotate-password",
        action="store_true",
        help="re-send MACHI_INFLUX_PASSWORD even if Grafana already stores one",
    )
    d.set_defaults(func=_deploy)

    v = sub.add_parser("verify", help="run every panel query against InfluxDB; fail on errors")
    v.add_argument(
        "--hours",
        type=float,
        help="time range to query, hours back from now (default: each board's own range)",
    )
    v.add_argument("--require-rows", action="store_true", help="also fail on empty panels")
    add_options(v, DashboardOptions)
    v.set_defaults(func=_verify)


def _opts(cls: type[DashboardOptions], args: argparse.Namespace) -> DashboardOptions | None:
    """The options, or None after printing them for ``--print-config``."""
    opts = load_options(cls, args)
    if args.print_config:
        print_config(opts)
        return None
    return opts


def _export(args: argparse.Namespace) -> int:
    from dashboards.export import JSON_DIR, export, stale

    root = args.out or JSON_DIR
    if args.check:
        bad = stale(root)
        for path in bad:
            print(f"stale: {path} (run `machi dashboards export`)", file=sys.stderr)
        return 1 if bad else 0
    for path in export(root):
        print(f"wrote {path}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from dashboards.deploy import DeployError, InfluxTarget, connect, deploy

    opts = _opts(DeployOptions, args)
    if opts is None:
        return 0
    assert isinstance(opts, DeployOptions)
    token = opts.token.get_secret_value() if opts.token else None
    password = opts.password.get_secret_value() if opts.password else None
    if opts.user and not password:
        raise ConfigError("MACHI_GRAFANA_USER is set but MACHI_GRAFANA_PASSWORD is not")
    settings = settings_of(opts)
    influx = InfluxTarget(
        url=opts.grafana_influx_url or settings.influx_url,
        database=settings.influx_db,
        user=settings.influx_user,
        password=settings.influx_password,
    )
    url, user = opts.url, opts.user
    try:
        api = connect(url, token, (user, password) if user and password else None)
        report = deploy(api, url, influx, args.rotate_password)
    except DeployError as exc:
        print(f"machi dashboards deploy: {exc}", file=sys.stderr)
        return 1
    for kind, uid, action in report.actions:
        print(f"{kind:10} {uid:28} {action}")
    for uid in report.unknown_dashboards:
        print(f"note: dashboard {uid} is tagged machi but not defined in code (left alone)")
    print(f"{len(report.changed)} changed, {len(report.actions) - len(report.changed)} unchanged")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from contract.influx import InfluxV1
    from dashboards.verify import run_all

    opts = _opts(DashboardOptions, args)
    if opts is None:
        return 0
    client = InfluxV1.from_settings(settings_of(opts))
    now = int(time.time() * 1000)
    span = None if args.hours is None else (now - int(args.hours * 3_600_000), now)
    try:
        results = run_all(client, *(span or (None, None)))
    finally:
        client.close()
    failed = 0
    for r in results:
        status = "ERROR" if r.error else ("empty" if r.rows == 0 else "ok")
        bad = r.error is not None or (args.require_rows and r.rows == 0)
        failed += bad
        print(
            f"{status:5} {r.board:22} {r.panel} [{r.rows} rows]{': ' + r.error if r.error else ''}"
        )
    print(f"{len(results)} panel queries, {failed} failed")
    return 1 if failed else 0
