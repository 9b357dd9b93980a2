"""The device registry: one JSON file of identities, written atomically and locked.

An identity is one of:

* ``device``  -- a sensor with a contract ``kind`` and ``site``. With a credential it
  connects to the broker itself; without one (``has_secret`` false) it sits behind an
  agent that publishes for it.
* ``agent``   -- an edge agent / gateway; ``devices`` lists the device ids it may publish
  telemetry for (besides its own status topic).
* ``ingest`` / ``events`` / ``api`` -- service accounts with fixed grants.

Secrets are never stored: only their ``$7$`` PBKDF2-SHA512 hash (see ``hashing``).
Revoked identities stay in the file (with ``revoked_ms``) as an audit trail, and their
ids cannot be reused, so an old credential can never come back to life under a new owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from contract.ids import check_id
from contract.schema import KINDS
from devices.hashing import hash_secret, new_secret, parse_hash

ROLES = ("device", "agent", "ingest", "events", "api", "alerts")
SERVICE_ROLES = ("ingest", "events", "api", "alerts")
FORMAT_VERSION = 1


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message says what to do instead."""


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
    """The identities of one deployment, keyed by id."""

    identities: dict[str, Identity] = field(default_factory=dict)

    # -- queries ---------------------------------------------------------------------
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

    # -- changes ---------------------------------------------------------------------
    def add(
        self,
        ident_id: str,
        role: str = "device",
        kind: str | None = None,
        site: str | None = None,
        devices: tuple[str, ...] = (),
        with_secret: bool = True,
        note: str = "",
    ) -> tuple[Identity, str | None]:
        """Add an identity; return it and its new secret (shown once, never stored)."""
        if ident_id in self.identities:
            old = self.identities[ident_id]
            state = "was revoked; ids are never reused" if not old.active else "exists"
            raise RegistryError(
                f"identity {ident_id!r} {state}: choose another id "
                "(or `machi devices rotate` to replace a credential)"
            )
        if not with_secret and role != "device":
            raise RegistryError("only devices behind an agent may have no credential")
        for d in devices:
            if self.device(d) is None:
                raise RegistryError(
                    f"agent {ident_id!r} lists device {d!r}, which is not an active device: "
                    "add the device first (`machi devices add ID --kind K --site S --no-secret`)"
                )
        secret = new_secret() if with_secret else None
        ident = Identity(
            id=ident_id,
            role=role,
            secret_hash=hash_secret(secret) if secret else None,
            kind=kind,
            site=site,
            devices=tuple(dict.fromkeys(devices)),
            created_ms=_now_ms(),
            note=note,
        )
        ident.validate()
        self.identities[ident_id] = ident
        return ident, secret

    def revoke(self, ident_id: str) -> Identity:
        ident = self.get(ident_id)
        if not ident.active:
            raise RegistryError(f"identity {ident_id!r} is already revoked")
        ident = replace(ident, revoked_ms=_now_ms())
        self.identities[ident_id] = ident
        return ident

    def rotate(self, ident_id: str) -> str:
        """Give an active identity a new secret; the old one stops working on export."""
        ident = self.get(ident_id)
        if not ident.active:
            raise RegistryError(f"identity {ident_id!r} is revoked; add a new identity instead")
        secret = new_secret()
        self.identities[ident_id] = replace(ident, secret_hash=hash_secret(secret))
        return secret

    def grant(self, agent_id: str, device_ids: tuple[str, ...]) -> Identity:
        """Let an agent publish for more devices."""
        agent = self.get(agent_id)
        if agent.role != "agent" or not agent.active:
            raise RegistryError(f"{agent_id!r} is not an active agent")
        for d in device_ids:
            if self.device(d) is None:
                raise RegistryError(f"{d!r} is not an active device; add it first")
        agent = replace(agent, devices=tuple(dict.fromkeys(agent.devices + device_ids)))
        self.identities[agent_id] = agent
        return agent

    # -- persistence -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "identities": [i.to_json() for i in sorted(self.identities.values(), key=_key)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "registry") -> Registry:
        if data.get("version") != FORMAT_VERSION:
            raise RegistryError(
                f"{source}: version {data.get('version')!r} is not {FORMAT_VERSION}; "
                "upgrade machi to read it"
            )
        reg = cls()
        for raw in data.get("identities", []):
            try:
                ident = Identity.from_json(raw)
            except (TypeError, ValueError) as exc:
                raise RegistryError(f"{source}: bad identity {raw.get('id')!r}: {exc}") from None
            reg.identities[ident.id] = ident
        return reg


def _key(i: Identity) -> str:
    return i.id


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def load(path: Path) -> Registry:
    """Read the registry at ``path``; a missing file is an empty registry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Registry()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is not valid JSON ({exc}); restore it from a backup") from None
    return Registry.from_json(data, str(path))


def save(reg: Registry, path: Path) -> None:
    """Write atomically (temp file + fsync + rename), readable by the owner only."""
    write_private(path, json.dumps(reg.to_json(), indent=2, sort_keys=True) + "\n")


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``text``; a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def editing(path: Path) -> Iterator[Registry]:
    """Load, let the caller change, and save the registry under an exclusive lock.

    The lock file keeps two concurrent ``machi devices`` commands from losing an update.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = load(path)
        yield reg
        save(reg, path)
