"""The edge agent's TOML configuration, checked up front with errors that say what to fix.

Secrets (B-route password, MQTT password, key paths' contents) are never echoed: errors
name the key, not its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.ids import ID_RE, check_id
from contract.rules import SOURCE_TYPES
from contract.schema import MAX_READINGS
from contract.settings import ConfigError, Settings, load_toml

# Gateways carry many devices; each reading names its own device_id.
MULTI_DEVICE_TYPES = tuple(name for name, t in SOURCE_TYPES.items() if t.multi_device)


@dataclass(frozen=True)
class SourceSpec:
    """One ``[[sources]]`` table: what the agent needs, plus the raw table for the driver."""

    name: str
    type: str
    device_id: str | None
    site: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class EdgeConfig:
    agent_id: str
    site: str
    settings: Settings
    outbox_path: Path
    max_bytes: int
    synchronous: str = "full"
    batch_s: float = 1.0
    max_batch: int = 100
    max_inflight: int = 100
    status_interval_s: float = 5.0
    mqtt_protocol: int = 5
    rejects_max_bytes: int = 10_000_000
    # Keep a message until ingest confirms it stored (contract §7), not just the PUBACK.
    require_confirmation: bool = True
    confirm_timeout_s: float = 120.0
    sources: list[SourceSpec] = field(default_factory=list)

    def served_devices(self) -> set[str]:
        """Device ids the sources are configured to produce (gateways: their map)."""
        out: set[str] = set()
        for spec in self.sources:
            if spec.type in MULTI_DEVICE_TYPES:
                devices = spec.raw.get("devices")
                if isinstance(devices, dict):
                    out.update(d for d in devices.values() if isinstance(d, str) and ID_RE.match(d))
            elif spec.device_id is not None:
                out.add(spec.device_id)
        return out

    @property
    def rejects_path(self) -> Path:
        return self.outbox_path.with_name(self.outbox_path.stem + ".rejects.jsonl")


def _table(doc: dict[str, Any], name: str, required: bool = True) -> dict[str, Any]:
    value = doc.get(name)
    if value is None:
        if required:
            raise ConfigError(f"section [{name}] is missing; see edge/samples/edge.toml")
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _num(t: dict[str, Any], where: str, key: str, default: float, lo: float, hi: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ConfigError(f"{where} {key} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _int(t: dict[str, Any], where: str, key: str, default: int, lo: int, hi: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where} {key} must be a whole number in [{lo}, {hi}], got {value!r}")
    return value


def _str(t: dict[str, Any], where: str, key: str, default: str | None = None) -> str | None:
    value = t.get(key, default)
    if value is not None and (not isinstance(value, str) or not value):
        # No value in the message: this may be a secret.
        raise ConfigError(f"{where} {key} must be a non-empty string")
    return value


def _id(value: Any, where: str, key: str) -> str:
    try:
        return check_id(value, key)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}") from None


def _source(i: int, raw: Any, default_site: str, names: set[str]) -> SourceSpec:
    where = f"[[sources]] #{i + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    stype = raw.get("type")
    if stype not in SOURCE_TYPES:
        raise ConfigError(f"{where} type {stype!r} is not one of {', '.join(SOURCE_TYPES)}")
    device_id = raw.get("device_id")
    if device_id is not None:
        device_id = _id(device_id, where, "device_id")
    elif stype not in MULTI_DEVICE_TYPES:
        raise ConfigError(f'{where} (type {stype}) needs device_id = "..."')
    site = _id(raw.get("site", default_site), where, "site")
    _num(raw, where, "interval_s", 1.0, 0.01, 86400)
    name = raw.get("name") or f"{stype}:{device_id or raw.get('port') or i + 1}"
    if not isinstance(name, str) or name in names:
        raise ConfigError(f'{where} name {name!r} is not a unique string; set name = "..."')
    names.add(name)
    return SourceSpec(name=name, type=stype, device_id=device_id, site=site, raw=dict(raw))


def parse_config(doc: dict[str, Any], base_dir: Path | None = None) -> EdgeConfig:
    """Check a parsed TOML document and return the agent's configuration."""
    agent = _table(doc, "agent")
    mqtt = _table(doc, "mqtt")
    outbox = _table(doc, "outbox")
    agent_id = _id(agent.get("id"), "[agent]", "id")
    site = _id(agent.get("site", "default"), "[agent]", "site")

    protocol = _int(mqtt, "[mqtt]", "protocol", 5, 3, 5)
    if protocol not in (3, 5):  # 3 means MQTT 3.1.1
        raise ConfigError("[mqtt] protocol must be 5 or 3 (MQTT 3.1.1)")
    try:
        settings = Settings.from_env(
            mqtt_url=_str(mqtt, "[mqtt]", "url"),
            topic_prefix=_str(mqtt, "[mqtt]", "topic_prefix"),
            mqtt_ca=_str(mqtt, "[mqtt]", "ca"),
            mqtt_cert=_str(mqtt, "[mqtt]", "cert"),
            mqtt_key=_str(mqtt, "[mqtt]", "key"),
        )
    except ConfigError as exc:
        # The URL may carry a password: say what is wrong without repeating it.
        raise ConfigError(
            "[mqtt] url is invalid: use mqtt://host:port or mqtts://user:pass@host:port"
        ) from exc
    if settings.mqtt_cert and not settings.mqtt_key:
        raise ConfigError("[mqtt] cert is set but key is not; give both for a client certificate")
    for key in ("ca", "cert", "key"):
        path = getattr(settings, f"mqtt_{key}")
        if path and not Path(path).is_file():
            raise ConfigError(f"[mqtt] {key} file {path} does not exist or is not a file")

    path_s = _str(outbox, "[outbox]", "path")
    if path_s is None:
        raise ConfigError('[outbox] path is missing; e.g. path = "/var/lib/machi-edge/outbox.db"')
    path = Path(path_s)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    sync = outbox.get("synchronous", "full")
    if sync not in ("full", "normal"):
        raise ConfigError('[outbox] synchronous must be "full" (power-loss safe) or "normal"')

    require = outbox.get("require_confirmation", True)
    if not isinstance(require, bool):
        raise ConfigError("[outbox] require_confirmation must be true or false")

    raw_sources = doc.get("sources", [])
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(
            "no [[sources]] configured; add at least one (see edge/samples/edge.toml)"
        )
    names: set[str] = set()
    sources = [_source(i, s, site, names) for i, s in enumerate(raw_sources)]

    return EdgeConfig(
        agent_id=agent_id,
        site=site,
        settings=settings,
        outbox_path=path,
        max_bytes=_int(outbox, "[outbox]", "max_bytes", 100_000_000, 10_000, 2**40),
        synchronous=sync,
        batch_s=_num(agent, "[agent]", "batch_s", 1.0, 0.01, 60),
        max_batch=_int(agent, "[agent]", "max_batch", 100, 1, MAX_READINGS),
        max_inflight=_int(mqtt, "[mqtt]", "max_inflight", 100, 1, 1000),
        status_interval_s=_num(agent, "[agent]", "status_interval_s", 5.0, 0.2, 3600),
        mqtt_protocol=5 if protocol == 5 else 311,
        rejects_max_bytes=_int(outbox, "[outbox]", "rejects_max_bytes", 10_000_000, 10_000, 2**34),
        require_confirmation=require,
        confirm_timeout_s=_num(outbox, "[outbox]", "confirm_timeout_s", 120.0, 1, 86400),
        sources=sources,
    )


def load_config(path: str | Path) -> EdgeConfig:
    """Load and check an edge TOML file; relative paths are relative to the file."""
    p = Path(path)
    return parse_config(load_toml(p), base_dir=p.resolve().parent)
