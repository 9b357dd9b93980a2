"""The device registry's read-only model: identities, their validation, and the file.

``machi devices`` (``devices/registry.py``) writes the registry; ingest reads it to bind
each device to its kind and site (``ingest/binding.py``). Both use this one parser, so a
file that ``machi devices`` accepts is exactly a file ingest accepts.

An identity is one of:

* ``device``  -- a sensor with a contract ``kind`` and ``site``. With a credential it
  connects to the broker itself; without one (``secret_hash`` None) it sits behind an
  agent that publishes for it.
* ``agent``   -- an edge agent / gateway; ``devices`` lists the device ids it may publish
  telemetry for (besides its own status topic).
* ``ingest`` / ``events`` / ``api`` / ``alerts`` -- service accounts with fixed grants.

Secrets are never stored: only their ``$7$`` PBKDF2-SHA512 hash. Revoked identities stay
in the file (with ``revoked_ms``) as an audit trail.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from contract.ids import check_id
from contract.schema import KINDS

__all__ = [
    "FORMAT_VERSION",
    "ROLES",
    "SERVICE_ROLES",
    "HashFormatError",
    "Identity",
    "Registry",
    "RegistryError",
    "load",
    "parse_hash",
    "read_json",
]

ROLES = ("device", "agent", "ingest", "events", "api", "alerts")
SERVICE_ROLES = ("ingest", "events", "api", "alerts")
FORMAT_VERSION = 1
MAX_ITERATIONS = 1_000_000


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says what to do instead."""


class HashFormatError(ValueError):
    """A stored hash that is not in ``$7$iterations$salt$hash`` form."""


def parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """Split a ``$7$`` hash into (iterations, salt, digest); raise HashFormatError."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        raise HashFormatError(f"hash {encoded[:12]!r}... is not a $7$ PBKDF2-SHA512 hash")
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except ValueError as exc:
        raise HashFormatError(f"hash is malformed: {exc}") from None
    if not 1 <= iterations <= MAX_ITERATIONS or len(digest) != 64 or not salt:
        raise HashFormatError("hash has an implausible iteration count, salt or digest length")
    return iterations, salt, digest


@dataclass(frozen=True)
class Identity:
    id: str
    role: str
    secret_hash: str | None
    kind: str | None = None
    site: str | None = None
    devices: tuple[str, ...] = ()
    created_ms: int = 0
    revoked_ms: int | None = None
    note: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_ms is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Identity:
        ident = cls(**{**d, "devices": tuple(d.get("devices", ()))})
        ident.validate()
        return ident

    def validate(self) -> None:
        check_id(self.id, "identity id")
        if self.role not in ROLES:
            raise RegistryError(f"{self.id}: role {self.role!r} is not one of {', '.join(ROLES)}")
        if self.role == "device":
            if self.kind not in KINDS:
                raise RegistryError(
                    f"{self.id}: a device needs --kind, one of {', '.join(KINDS)} "
                    f"(got {self.kind!r})"
                )
            if self.site is None:
                raise RegistryError(f"{self.id}: a device needs --site")
        elif self.kind is not None:
            raise RegistryError(f"{self.id}: only devices have a kind, not a {self.role}")
        if self.site is not None:
            check_id(self.site, "site")
        if self.devices and self.role != "agent":
            raise RegistryError(f"{self.id}: only agents list devices they publish for")
        for d in self.devices:
            check_id(d, "device id")
        if self.secret_hash is not None:
            parse_hash(self.secret_hash)
        elif self.role != "device":
            raise RegistryError(f"{self.id}: a {self.role} must have a credential")


@dataclass
class Registry:
    """The identities of one deployment, keyed by id (queries only; see devices.registry)."""

    identities: dict[str, Identity] = field(default_factory=dict)

    def get(self, ident_id: str) -> Identity:
        try:
            return self.identities[ident_id]
        except KeyError:
            raise RegistryError(
                f"no identity {ident_id!r} in the registry; `machi devices list` shows them"
            ) from None

    def active(self) -> list[Identity]:
        return [i for i in self.identities.values() if i.active]

    def device(self, device_id: str) -> Identity | None:
        """The active device record for ``device_id``, or None."""
        ident = self.identities.get(device_id)
        return ident if ident and ident.active and ident.role == "device" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "identities": [i.to_json() for i in sorted(self.identities.values(), key=_key)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "registry") -> Self:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise RegistryError(
                f"{source}: version {version!r} is not {FORMAT_VERSION}; upgrade machi to read it"
            )
        reg = cls()
        for raw in data.get("identities", []):
            try:
                ident = Identity.from_json(raw)
            except (TypeError, ValueError, AttributeError) as exc:
                name = raw.get("id") if isinstance(raw, dict) else raw
                raise RegistryError(f"{source}: bad identity {name!r}: {exc}") from None
            reg.identities[ident.id] = ident
        return reg


def _key(i: Identity) -> str:
    return i.id


def read_json(path: Path) -> dict[str, Any] | None:
    """The registry file's JSON, or None if the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is not valid JSON ({exc}); restore it from a backup") from None
    return data


def load(path: Path) -> Registry:
    """Read the registry at ``path``; a missing file is an empty registry."""
    data = read_json(path)
    return Registry() if data is None else Registry.from_json(data, str(path))
