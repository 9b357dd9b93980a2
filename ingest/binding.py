"""Device binding: telemetry is accepted only from registered devices, for their kind and
site, as the device registry (``machi devices``, ``contract.registry``) says.

The broker's ACL already limits each credential to its own topics; this check closes
what the ACL cannot see, the payload: a device that claims another district, a topic of
a device that was revoked after the ACL was last exported, a kind it was not registered
with. Each case has its own reject reason (``contract.schema.Reason``).

A device that an agent publishes for (listed in an active agent's ``devices``, or one
without a credential of its own, so only an agent can reach its topic) gets its
registered site written over whatever the message says: agents stamp readings with
their configured site, which is not the registry's business to police. A device with its
own credential that claims another site is rejected (``wrong_site``).

The file is re-read when its inode, size or mtime changes (checked at most every
``poll_s`` seconds on the message path, a ``stat`` call). A file that became unreadable
or invalid keeps the previous binding in force and is logged, never half-applied.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from contract.options import Options, option
from contract.registry import Registry, RegistryError, read_json
from contract.schema import Message, Reason, Rejected
from contract.settings import ConfigError

__all__ = ["Binding", "BindingOptions", "Bound", "load_binding"]

log = logging.getLogger("machi.ingest.binding")


@dataclass(frozen=True, slots=True)
class Bound:
    """What ingest needs of one registered device id."""

    role: str
    kind: str | None
    site: str | None
    active: bool
    via_agent: bool  # an agent publishes for it: its registered site wins


def _table(reg: Registry) -> dict[str, Bound]:
    fronted = {d for i in reg.active() if i.role == "agent" for d in i.devices}
    return {
        i.id: Bound(i.role, i.kind, i.site, i.active, i.id in fronted or i.secret_hash is None)
        for i in reg.identities.values()
    }


def _read(path: Path) -> dict[str, Bound]:
    data = read_json(path)
    if data is None:
        raise RegistryError(f"{path} does not exist")
    return _table(Registry.from_json(data, str(path)))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Binding:
    """The registry's device table, re-read when the file changes."""

    def __init__(
        self, path: Path, poll_s: float = 1.0, on_rewrite: Callable[[], object] | None = None
    ) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self.reloads = 0
        self.rewritten = 0  # messages whose site was replaced by the registered one
        self._on_rewrite = on_rewrite
        self._lock = threading.Lock()
        self._stamp = _stamp(self.path)
        self._table = _read(self.path)  # raises: the caller turns it into a start error
        self._next_check = time.monotonic() + poll_s

    def __len__(self) -> int:
        return sum(1 for b in self._table.values() if b.role == "device")

    def maybe_reload(self) -> None:
        """Re-read the file if it changed since the last look (rate-limited by poll_s)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        with self._lock:
            if now < self._next_check:
                return
            self._next_check = now + self.poll_s
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._table = _read(self.path)
            except (RegistryError, OSError, ValueError) as exc:
                log.error(
                    "device registry changed but cannot be read; keeping the previous one",
                    extra={"fields": {"registry": str(self.path), "error": str(exc)}},
                )
                return
            self.reloads += 1
            log.info(
                "device registry reloaded",
                extra={"fields": {"registry": str(self.path), "devices": len(self)}},
            )

    def bind(self, msg: Message) -> Message:
        """``msg`` if its device may send it, with the registered site; else Rejected."""
        self.maybe_reload()
        b = self._table.get(msg.device_id)
        if b is None or b.role != "device":
            what = "is not in the device registry" if b is None else f"is a {b.role}"
            raise Rejected(
                Reason.UNKNOWN_DEVICE,
                f"device {msg.device_id!r} {what}: register it with "
                f"`machi devices add {msg.device_id} --kind {msg.kind} --site SITE`",
            )
        if not b.active:
            raise Rejected(
                Reason.REVOKED_DEVICE,
                f"device {msg.device_id!r} was revoked; its telemetry is no longer accepted",
            )
        if b.kind != msg.kind:
            raise Rejected(
                Reason.WRONG_KIND,
                f"device {msg.device_id!r} is registered as {b.kind!r}, not {msg.kind!r}",
            )
        if b.site != msg.site:
            if b.via_agent:
                self.rewritten += 1
                if self._on_rewrite is not None:
                    self._on_rewrite()
                return msgspec.structs.replace(msg, site=b.site)
            raise Rejected(
                Reason.WRONG_SITE,
                f"device {msg.device_id!r} is registered at site {b.site!r} but the message "
                f"says {msg.site!r}; fix the device's configured site, or move it with the "
                "registry",
            )
        return msg


class BindingOptions(Options):
    """The binding options of every telemetry consumer (``machi ingest``, ``machi events``)."""

    registry: Path | None = option(
        None,
        env="MACHI_REGISTRY",
        help="device registry written by `machi devices`: telemetry is bound to each "
        "device's kind and site (re-read on change); required unless --open-mode",
    )
    open_mode: bool = option(
        False,
        env="MACHI_INGEST_OPEN",
        help="accept telemetry of any device without a registry (demo, benchmarks); "
        "logged at start",
    )

    def binding(self, on_rewrite: Callable[[], object] | None = None) -> Binding | None:
        return load_binding(self.registry, self.open_mode, on_rewrite)


def load_binding(
    registry: Path | None, open_mode: bool, on_rewrite: Callable[[], object] | None = None
) -> Binding | None:
    """The binding ingest runs with (logged), or None in open mode; ConfigError if neither
    works."""
    if open_mode:
        if registry is not None:
            raise ConfigError(
                "--registry/MACHI_REGISTRY and --open-mode/MACHI_INGEST_OPEN exclude each "
                "other: open mode accepts any device, so drop one of them"
            )
        log.warning(
            "OPEN MODE: no device registry; telemetry of any device id, kind and site is "
            "accepted (demo/benchmark only: see docs/security.md)",
            extra={"fields": {"open_mode": True}},
        )
        return None
    if registry is None:
        raise ConfigError(
            "no device registry: give --registry PATH (MACHI_REGISTRY, the file `machi "
            "devices` writes), or --open-mode (MACHI_INGEST_OPEN=1) to accept any device"
        )
    try:
        binding = Binding(registry, on_rewrite=on_rewrite)
    except (RegistryError, OSError) as exc:
        raise ConfigError(
            f"--registry/MACHI_REGISTRY: {exc}; fix the file or run with --open-mode"
        ) from None
    log.info(
        "device binding on",
        extra={"fields": {"registry": str(registry), "devices": len(binding), "open_mode": False}},
    )
    return binding
