"""``machi devices``: manage device identities and export Mosquitto's auth files."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from contract.options import (
    RegistryOptions,
    TopicOptions,
    add_options,
    load_options,
    print_config,
)


class DevicesOptions(RegistryOptions, TopicOptions):
    """``machi devices``: the registry, and the topic prefix its ACL is written for."""


DEFAULT_REGISTRY = str(DevicesOptions.model_fields["registry"].default)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "devices",
        help="device identities: add, list, revoke, rotate, grant, export broker auth files",
    )
    add_options(p, DevicesOptions, only=["registry"])
    p.set_defaults(func=_no_op, devices_parser=p)
    ops = p.add_subparsers(dest="op", metavar="OP")

    a = ops.add_parser("add", help="add an identity and print its secret once (on stdout)")
    a.add_argument("id")
    a.add_argument(
        "--role", default="device", choices=("device", "agent", "ingest", "events", "api", "alerts")
    )
    a.add_argument("--kind", help="device kind: energy_meter | wearable | bus")
    a.add_argument("--site", help="site id of a device or agent")
    a.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="DEVICE_ID",
        help="(agent) a registered device the agent may publish for; repeatable",
    )
    a.add_argument(
        "--no-secret",
        action="store_true",
        help="(device) no credential: the device is reached only through an agent",
    )
    a.add_argument("--note", default="", help="free text, e.g. where the device is installed")
    a.set_defaults(func=_add)

    ls = ops.add_parser("list", help="list identities (active ones unless --all)")
    ls.add_argument("--all", action="store_true", help="include revoked identities")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)

    r = ops.add_parser("revoke", help="revoke an identity (takes effect at the next export)")
    r.add_argument("id")
    r.set_defaults(func=_revoke)

    ro = ops.add_parser("rotate", help="give an identity a new secret and print it once")
    ro.add_argument("id")
    ro.set_defaults(func=_rotate)

    g = ops.add_parser("grant", help="let an agent publish for more registered devices")
    g.add_argument("agent")
    g.add_argument("devices", nargs="+", metavar="DEVICE_ID")
    g.set_defaults(func=_grant)

    e = ops.add_parser("export", help="write Mosquitto's password file and ACL file")
    e.add_argument("--passwd", required=True, type=Path, help="password file to write")
    e.add_argument("--acl", required=True, type=Path, help="ACL file to write")
    add_options(e, DevicesOptions, only=["topic_prefix"])
    e.add_argument(
        "--reload-pid",
        type=int,
        default=None,
        help="send SIGHUP to this mosquitto pid afterwards so it re-reads both files",
    )
    e.set_defaults(func=_export)


def _no_op(args: argparse.Namespace) -> int:
    if args.print_config:
        return print_config(load_options(DevicesOptions, args))
    args.devices_parser.error("choose an OP (add, list, revoke, rotate, grant, export)")
    return 2


def _path(args: argparse.Namespace) -> Path:
    return load_options(DevicesOptions, args).registry


def _fail(msg: str) -> int:
    print(f"machi devices: {msg}", file=sys.stderr)
    return 1


def _add(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, editing

    try:
        with editing(_path(args)) as reg:
            ident, secret = reg.add(
                args.id,
                role=args.role,
                kind=args.kind,
                site=args.site,
                devices=tuple(args.device),
                with_secret=not args.no_secret,
                note=args.note,
            )
    except (RegistryError, ValueError) as exc:
        return _fail(str(exc))
    if secret is None:
        print(f"added {ident.role} {ident.id} without a credential", file=sys.stderr)
        return 0
    print(
        f"added {ident.role} {ident.id}; its secret follows on stdout and is shown only "
        "once: put it in the client's config (MQTT password), it cannot be recovered",
        file=sys.stderr,
    )
    print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, load

    try:
        reg = load(_path(args))
    except RegistryError as exc:
        return _fail(str(exc))
    idents = sorted(reg.identities.values(), key=lambda i: i.id)
    if not args.all:
        idents = [i for i in idents if i.active]
    if args.json:
        # Hashes stay out of listings: they are only needed by the password file.
        rows = [{k: v for k, v in i.to_json().items() if k != "secret_hash"} for i in idents]
        print(json.dumps(rows, indent=2))
        return 0
    for i in idents:
        state = "active" if i.active else "REVOKED"
        extra = f" devices={','.join(i.devices)}" if i.devices else ""
        cred = "" if i.secret_hash else " (no credential)"
        print(f"{i.id}\t{i.role}\t{i.kind or '-'}\t{i.site or '-'}\t{state}{cred}{extra}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, editing

    try:
        with editing(_path(args)) as reg:
            reg.revoke(args.id)
    except RegistryError as exc:
        return _fail(str(exc))
    print(
        f"revoked {args.id}; run `machi devices export ... --reload-pid PID` "
        "so the broker refuses it",
        file=sys.stderr,
    )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, editing

    try:
        with editing(_path(args)) as reg:
            secret = reg.rotate(args.id)
    except RegistryError as exc:
        return _fail(str(exc))
    print(f"new secret for {args.id} (shown once; export to activate it):", file=sys.stderr)
    print(secret)
    return 0


def _grant(args: argparse.Namespace) -> int:
    from devices.registry import RegistryError, editing

    try:
        with editing(_path(args)) as reg:
            agent = reg.grant(args.agent, tuple(args.devices))
    except (RegistryError, ValueError) as exc:
        return _fail(str(exc))
    print(f"{agent.id} may publish for: {', '.join(agent.devices)}", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from contract.topics import Topics
    from devices.mosquitto_files import export
    from devices.registry import RegistryError, load

    prefix = load_options(DevicesOptions, args).topic_prefix
    try:
        topics = Topics(prefix)
        out = export(load(_path(args)), topics, args.passwd, args.acl)
    except (RegistryError, ValueError) as exc:
        return _fail(str(exc))
    print(
        f"wrote {out.passwd} and {out.acl} ({out.identities} identities, prefix {prefix})",
        file=sys.stderr,
    )
    if args.reload_pid is not None:
        try:
            os.kill(args.reload_pid, signal.SIGHUP)
        except ProcessLookupError:
            return _fail(f"no process {args.reload_pid}: is mosquitto running? Files were written")
        print(f"sent SIGHUP to {args.reload_pid}", file=sys.stderr)
    return 0
