"""The one option table: each option is declared once, as a pydantic-settings field.

A component declares its options as a subclass of :class:`Options`, one field per option::

    class IngestOptions(ConnectionOptions):
        batch_lines: int = option(5000, env="MACHI_INGEST_BATCH_LINES", ge=1,
                                  help="lines per InfluxDB write")

From that single declaration come the ``--batch-lines`` flag (:func:`add_options`), the
``MACHI_INGEST_BATCH_LINES`` variable (pydantic-settings), validation with bounds, the
``--help`` text with the default and the variable, ``--print-config`` (secrets redacted)
and the README's configuration table (:func:`markdown_table`).

Precedence is per option: a flag given on the command line wins, then a non-empty
environment variable, then the default. A bad value stops the process at start with
one line that names the flag, the variable and what is allowed (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.settings import ConfigError, MqttUrl, Settings

__all__ = [
    "ConnectionOptions",
    "InfluxOptions",
    "MqttOptions",
    "RegistryOptions",
    "TopicOptions",
    "Options",
    "add_options",
    "load_options",
    "markdown_table",
    "option",
    "print_config",
    "settings_of",
]

OptionsT = TypeVar("OptionsT", bound="Options")


def option(
    default: Any,
    *,
    env: str,
    help: str,
    flag: str | None = None,
    secret: bool = False,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    cli: bool = True,
) -> Any:
    """Declare one option. ``flag`` defaults to ``--field-name``; ``cli=False`` makes it
    environment-only (for secrets that must not appear in ``ps``)."""
    if not env.startswith("MACHI_"):
        raise ValueError(f"option variable {env} must start with MACHI_")
    return Field(
        default,
        validation_alias=env,
        description=help,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        json_schema_extra={"flag": flag, "secret": secret, "cli": cli},
    )


class Options(BaseSettings):
    """Base of every component's option table (environment variables are ``MACHI_*``)."""

    model_config = SettingsConfigDict(
        validate_by_name=True,
        validate_by_alias=True,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        case_sensitive=True,
    )

    def redacted(self) -> dict[str, Any]:
        """The effective values, JSON-ready, with secrets (and URL passwords) masked."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if _extra(info).get("secret") and value is not None or isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, str) and "://" in value and "@" in value:
                value = _redact_url(value)
            out[name] = value
        return out


class TopicOptions(Options):
    """The topic prefix (``{prefix}/v1/...``)."""

    topic_prefix: str = option("city", env="MACHI_TOPIC_PREFIX", help="topic prefix")


class MqttOptions(TopicOptions):
    """Broker connection and topic prefix."""

    mqtt_url: str = option(
        "mqtt://127.0.0.1:1883",
        env="MACHI_MQTT_URL",
        help="broker URL, mqtt://user:pass@host:port or mqtts://...",
    )
    mqtt_ca: Path | None = option(None, env="MACHI_MQTT_CA", help="TLS trust anchor (PEM)")
    mqtt_cert: Path | None = option(None, env="MACHI_MQTT_CERT", help="TLS client certificate")
    mqtt_key: Path | None = option(None, env="MACHI_MQTT_KEY", help="TLS client key", secret=True)

    def model_post_init(self, context: Any, /) -> None:
        try:
            MqttUrl.parse(self.mqtt_url)
        except ConfigError as exc:
            raise ConfigError(f"--mqtt-url / MACHI_MQTT_URL: {exc}") from None


class InfluxOptions(Options):
    """InfluxDB connection (v1 API; the v2 fields for the native writer)."""

    influx_url: str = option("http://127.0.0.1:8086", env="MACHI_INFLUX_URL", help="InfluxDB URL")
    influx_db: str = option("city", env="MACHI_INFLUX_DB", help="database (v1 API)")
    influx_user: str | None = option(None, env="MACHI_INFLUX_USER", help="InfluxDB user")
    influx_password: SecretStr | None = option(
        None, env="MACHI_INFLUX_PASSWORD", help="InfluxDB password", secret=True, cli=False
    )
    influx_token: SecretStr | None = option(
        None, env="MACHI_INFLUX_TOKEN", help="InfluxDB 2.x token", secret=True, cli=False
    )
    influx_org: str | None = option(None, env="MACHI_INFLUX_ORG", help="InfluxDB 2.x org")
    influx_bucket: str | None = option(None, env="MACHI_INFLUX_BUCKET", help="InfluxDB 2.x bucket")


class RegistryOptions(Options):
    """The device registry file that ``machi devices`` writes (and ingest reads)."""

    registry: Path = option(
        Path(".devices.json"), env="MACHI_REGISTRY", help="device registry file (JSON)"
    )


class ConnectionOptions(MqttOptions, InfluxOptions):
    """Broker, database and topic prefix: for every component that uses both."""


def settings_of(opts: Options) -> Settings:
    """The runtime :class:`contract.settings.Settings` an option table describes (fields
    the table does not declare keep their defaults)."""

    def get(name: str) -> Any:
        v = getattr(opts, name, None)
        if isinstance(v, SecretStr):
            return v.get_secret_value()
        if isinstance(v, Path):
            return str(v)
        return v

    given = {f.name: get(f.name) for f in dataclasses.fields(Settings) if f.name != "extra"}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _redact_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _env_name(info: FieldInfo) -> str:
    alias = info.validation_alias
    assert isinstance(alias, str), "declare options with option()"
    return alias


def flag_name(name: str, info: FieldInfo) -> str:
    return str(_extra(info).get("flag") or "--" + name.replace("_", "-"))


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``Literal[...]`` stays."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
    return annotation


def _fields(cls: type[Options]) -> Iterable[tuple[str, FieldInfo]]:
    return cls.model_fields.items()


def add_options(
    parser: argparse.ArgumentParser, cls: type[Options], *, only: Sequence[str] | None = None
) -> None:
    """Add one flag per option of ``cls`` (or the ``only`` ones) and ``--print-config``."""
    for name, info in _fields(cls):
        extra = _extra(info)
        if not extra.get("cli", True) or (only is not None and name not in only):
            continue
        flag = flag_name(name, info)
        kind = _base_type(info.annotation)
        default = info.get_default()
        shown = "none" if default is None else default
        help_text = f"{info.description} [{_env_name(info)}, default {shown}]"
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is Literal:
            choices = get_args(kind)
            kwargs["choices"] = choices
            kwargs["type"] = type(choices[0])
        elif kind in (int, float):
            kwargs["type"] = str  # validated by pydantic, with the bounds in the message
            kwargs["metavar"] = "N"
        parser.add_argument(flag, **kwargs)
    if not any(a.dest == "print_config" for a in parser._actions):
        parser.add_argument(
            "--print-config",
            action="store_true",
            help="print the effective settings as JSON (secrets redacted) and exit",
        )


def _bounds(info: FieldInfo) -> str:
    """``between 1 and 64``, ``>= 0``, ``> 0 and <= 60``: what the option allows."""
    found: dict[str, float] = {}
    for m in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            v = getattr(m, attr, None)
            if v is not None:
                found[attr] = v
    lo = ("ge", found["ge"]) if "ge" in found else ("gt", found["gt"]) if "gt" in found else None
    hi = ("le", found["le"]) if "le" in found else ("lt", found["lt"]) if "lt" in found else None

    def side(b: tuple[str, float]) -> str:
        return f"{b[1]:g}" + (" (exclusive)" if b[0] in ("gt", "lt") else "")

    if lo and hi:
        return f"between {side(lo)} and {side(hi)}"
    sym = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return " and ".join(f"{sym[a]} {v:g}" for a, v in found.items())


def load_options(
    cls: type[OptionsT], args: argparse.Namespace | None = None, **given: Any
) -> OptionsT:
    """Build ``cls`` from the flags that were given (then env, then defaults).

    Raises :class:`ConfigError` with one line that names the flag, the variable and the
    allowed values when any option is malformed.
    """
    values: dict[str, Any] = {}
    if args is not None:
        for name in cls.model_fields:
            v = getattr(args, name, None)
            if v is not None:
                values[name] = v
    values.update({k: v for k, v in given.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(cls, exc)) from None


def _one_line(cls: type[Options], exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = str(err["loc"][0]) if err["loc"] else ""
    by_env = {_env_name(i): n for n, i in cls.model_fields.items()}
    name = by_env.get(loc, loc)
    info = cls.model_fields.get(name)
    if info is None:
        return f"{loc}: {err['msg']}"
    bounds = _bounds(info)
    allowed = f" (allowed: {bounds})" if bounds else ""
    value = "***" if _extra(info).get("secret") else repr(err.get("input"))
    return f"{flag_name(name, info)} / {_env_name(info)} = {value}: {err['msg'].lower()}{allowed}"


def print_config(opts: Options, **more: Any) -> int:
    """``--print-config``: the effective settings as JSON on stdout; returns exit code 0."""
    doc = opts.redacted()
    doc.update(more)
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


def markdown_table(tables: Sequence[tuple[str, type[Options]]]) -> str:
    """The README's configuration table, generated from the option declarations."""
    lines = ["| variable | flag | default | component | meaning |", "|---|---|---|---|---|"]
    seen: set[str] = set()
    for component, cls in tables:
        for name, info in _fields(cls):
            env = _env_name(info)
            if env in seen:
                continue
            seen.add(env)
            extra = _extra(info)
            flag = f"`{flag_name(name, info)}`" if extra.get("cli", True) else "(env only)"
            default = info.get_default()
            shown = "—" if default is None or default == "" else f"`{default}`"
            meaning = str(info.description)
            bounds = _bounds(info)
            if bounds:
                meaning += f" ({bounds})"
            if extra.get("secret"):
                meaning += "; secret, redacted by `--print-config`"
            lines.append(f"| `{env}` | {flag} | {shown} | {component} | {meaning} |")
    return "\n".join(lines) + "\n"
