"""Runtime settings shared by every component, and config-file loading.

Options (flags and ``MACHI_*`` variables) are declared in the option tables
(``contract.options``); this module holds the runtime :class:`Settings` they produce, the
MQTT URL parser, :class:`ConfigError` and :func:`load_toml` for config files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the setting and the fix."""


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, with errors that name the file and the line."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None


@dataclass(frozen=True)
class MqttUrl:
    """``mqtt://user:pass@host:port`` or ``mqtts://...`` parsed."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(
                f"MQTT URL {url!r} must start with mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
            )
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ConfigError(f"MQTT URL {url!r} has no host")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Settings shared by ingest, api, simulate and the edge agent's uplink."""

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "city"
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "city"
    influx_user: str | None = None
    influx_password: str | None = None
    influx_token: str | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    mqtt_ca: str | None = None
    mqtt_cert: str | None = None
    mqtt_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from ``MACHI_*`` variables (declared once, in
        ``contract.options.ConnectionOptions``); non-None ``overrides`` (flags) win."""
        from contract.options import ConnectionOptions, load_options, settings_of

        return settings_of(load_options(ConnectionOptions, **overrides))

    @property
    def mqtt(self) -> MqttUrl:
        return MqttUrl.parse(self.mqtt_url)
