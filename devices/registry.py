"""The device registry: one JSON file of identities, written atomically and locked.

The read-only model (identities, validation, the file format) is ``contract.registry``,
shared with ingest, which binds telemetry to it. This module adds the changes
(add, revoke, rotate, grant) and the locked, atomic writes used by ``machi devices``.
Revoked identities stay in the file as an audit trail, and their ids cannot be reused,
so an old credential can never come back to life under a new owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from contract.registry import (
    FORMAT_VERSION,
    ROLES,
    SERVICE_ROLES,
    Identity,
    RegistryError,
    read_json,
)
from contract.registry import Registry as RegistryModel
from devices.hashing import hash_secret, new_secret

__all__ = [
    "FORMAT_VERSION",
    "ROLES",
    "SERVICE_ROLES",
    "Identity",
    "Registry",
    "RegistryError",
    "editing",
    "load",
    "save",
    "write_private",
]


class Registry(RegistryModel):
    """The identities of one deployment, with the changes ``machi devices`` makes."""

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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def load(path: Path) -> Registry:
    """Read the registry at ``path``; a missing file is an empty registry."""
    data = read_json(path)
    return Registry() if data is None else Registry.from_json(data, str(path))


def save(reg: Registry, path: Path) -> None:
    """Write atomically (temp file + fsync + rename), readable by the owner only, or with
    the mode the existing file was given (e.g. 0644 so that ingest's container reads it)."""
    try:
        mode = os.stat(path).st_mode & 0o644  # never group/other write or any execute
    except FileNotFoundError:
        mode = 0o600
    write_private(path, json.dumps(reg.to_json(), indent=2, sort_keys=True) + "\n", mode=mode)


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
