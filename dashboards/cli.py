"""``machi dashboards export|deploy|verify``: Grafana dashboards as code."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contract.rules import CARE_K_DEFAULT, CARE_K_MIN, check_care_k
from contract.settings import ConfigError, env, env_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboards", help="export, deploy or verify the Grafana dashboards")
    sub = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")

    e = sub.add_parser("export", help="regenerate dashboards/json/ from the code")
    e.add_argument("--out", type=Path, help="directory (default: the package's json/)")
    e.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    _k(e)
    e.set_defaults(func=_export)

    d = sub.add_parser("deploy", help="push datasource, folders and dashboards to Grafana")
    d.add_argument("--url", help="Grafana URL (MACHI_GRAFANA_URL, default http://127.0.0.1:3000)")
    d.add_argument("--token", help="service-account token (MACHI_GRAFANA_TOKEN)")
    d.add_argument("--user", help="basic-auth user (MACHI_GRAFANA_USER)")
    d.add_argument("--password", help="basic-auth password (MACHI_GRAFANA_PASSWORD)")
    d.add_argument(
        "--influx-url",
        help="InfluxDB URL as Grafana's server reaches it (MACHI_GRAFANA_INFLUX_URL, "
        "default MACHI_INFLUX_URL)",
    )
    d.add_argument("--influx-db", help="database (MACHI_INFLUX_DB, default city)")
    d.add_argument(
        "--rotate-password",
        action="store_true",
        help="re-send MACHI_INFLUX_PASSWORD even if Grafana already stores one",
    )
    _k(d)
    d.set_defaults(func=_deploy)

    v = sub.add_parser("verify", help="run every panel query against InfluxDB; fail on errors")
    v.add_argument("--hours", type=float, default=24.0, help="time range to query (default 24)")
    v.add_argument("--require-rows", action="store_true", help="also fail on empty panels")
    _k(v)
    v.set_defaults(func=_verify)


def _k(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help="care privacy threshold: minimum residents behind a shown value "
        f"(MACHI_CARE_K, default {CARE_K_DEFAULT}, at least {CARE_K_MIN})",
    )


def _resolve_k(args: argparse.Namespace) -> int:
    from dashboards.boards import DEFAULT_K

    k = args.k if args.k is not None else env_int("MACHI_CARE_K", DEFAULT_K)
    try:
        return check_care_k(int(k), "--k / MACHI_CARE_K")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _export(args: argparse.Namespace) -> int:
    from dashboards.export import JSON_DIR, export, stale

    root = args.out or JSON_DIR
    k = _resolve_k(args)
    if args.check:
        bad = stale(root, k)
        for path in bad:
            print(f"stale: {path} (run `machi dashboards export`)", file=sys.stderr)
        return 1 if bad else 0
    for path in export(root, k):
        print(f"wrote {path}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    import os

    from contract.settings import Settings
    from dashboards.deploy import DeployError, InfluxTarget, connect, deploy

    url = args.url or env("MACHI_GRAFANA_URL", "http://127.0.0.1:3000")
    token = args.token or os.environ.get("MACHI_GRAFANA_TOKEN") or None
    user = args.user or os.environ.get("MACHI_GRAFANA_USER") or None
    password = args.password or os.environ.get("MACHI_GRAFANA_PASSWORD") or None
    if user and not password:
        raise ConfigError("MACHI_GRAFANA_USER is set but MACHI_GRAFANA_PASSWORD is not")
    settings = Settings.from_env(influx_db=args.influx_db)
    influx = InfluxTarget(
        url=args.influx_url or env("MACHI_GRAFANA_INFLUX_URL", settings.influx_url),
        database=settings.influx_db,
        user=settings.influx_user,
        password=settings.influx_password,
    )
    try:
        api = connect(url, token, (user, password) if user and password else None)
        report = deploy(api, url, influx, _resolve_k(args), args.rotate_password)
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
    from contract.settings import Settings
    from dashboards.verify import run_all

    s = Settings.from_env()
    client = InfluxV1.from_settings(s)
    now = int(time.time() * 1000)
    try:
        results = run_all(client, now - int(args.hours * 3_600_000), now, _resolve_k(args))
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
