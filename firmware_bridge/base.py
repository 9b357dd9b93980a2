"""What every device protocol offers the edge agent.

A *source* owns one device connection. The edge agent calls :meth:`Source.read` in a
loop (from its own thread per source); a source returns readings in contract units as
plain dicts *without* ``t`` -- the agent timestamps them with its UTC clock -- unless
the device supplies a trustworthy time (then it sets ``t`` in epoch ms).

Multi-device sources (a BLE gateway relays many wearables) put ``device_id`` (and
optionally ``site``) keys in each reading to say which device it is for; the agent uses
them instead of the source's configured ``device_id`` / ``site`` and removes them before
building the contract message. Single-device sources leave them out.

Sources are built from config by :func:`firmware_bridge.registry.make_source`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class DecodeError(ValueError):
    """Bytes that do not decode; the message says what was wrong and where.

    ``reason`` is a short label (``bad_checksum``, ``truncated``, ``noise``,
    ``malformed``, ...) that sources use as the reject reason in :meth:`Source.take_rejects`.
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class DeviceError(OSError):
    """The device or its port is unavailable; the agent reopens the source with backoff."""


class Source(Protocol):
    """One device connection that yields contract readings."""

    kind: str  # contract kind: energy_meter | wearable | bus

    def open(self) -> None:
        """Open the port / session. Raise DeviceError if the device is not there."""

    def read(self) -> list[dict[str, Any]]:
        """Block until at least one reading is ready (or about ``interval_s`` passes) and
        return the readings, possibly none. Raise DeviceError when the device is gone
        (the agent closes, backs off and reopens). Undecodable input is not an error
        here: count it, log it and keep reading."""

    def take_rejects(self) -> list[tuple[str, bytes]]:
        """Return and forget the inputs rejected since the last call, as
        ``(reason, raw_bytes)``. The agent counts them by reason and keeps them in its
        rejects file, so bad device input is never silently dropped."""

    def close(self) -> None:
        """Release the port. Must be safe to call twice."""


class RejectLog:
    """The reject bookkeeping of a source: :meth:`reject` keeps one input until the
    agent calls :meth:`take_rejects`."""

    def __init__(self) -> None:
        self._rejects: list[tuple[str, bytes]] = []

    def reject(self, reason: str, raw: bytes) -> None:
        self._rejects.append((reason, raw))

    def take_rejects(self) -> list[tuple[str, bytes]]:
        # Swap rather than copy-and-clear: a reject appended meanwhile by another thread
        # (the MQTT network thread) lands in one list or the other, never lost.
        out, self._rejects = self._rejects, []
        return out


class PollClock:
    """Paces a polled device: one request every ``interval_s``, the first at once."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    def reset(self) -> None:
        """Make the next :meth:`wait` return at once (after a (re)open)."""
        self._next = 0.0

    def wait(self) -> None:
        """Sleep until the next poll is due, then schedule the one after it."""
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next = time.monotonic() + self.interval_s
