"""One simulator harness for every serial device: a pty pair behind a stable symlink.

The test (or demo) side opens ``sim.path`` with pyserial like a real
``/dev/serial/by-id/...`` link; the device model runs in a thread on the master end.
Fault modes act on the frames the model emits, so every protocol gets the same set:

* ``noise``        -- garbage bytes before each frame (the frame itself stays intact);
* ``bad_checksum`` -- the frame's checksum / CRC is wrong (model-specific);
* ``truncated``    -- only the first half of the frame is sent;
* ``silence``      -- nothing is sent (requests go unanswered);
* :meth:`PtySimulator.unplug` / :meth:`PtySimulator.replug` -- the device disappears
  (symlink removed, pty closed) and comes back on a new pty behind the same symlink.

Ground truth: ``sim.sent`` lists the ``truth`` dicts of frames delivered intact, and
``sim.faulted`` the ``(mode, raw)`` of frames that were damaged or withheld, so an
end-to-end test can assert exact values downstream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

FAULTS = ("noise", "bad_checksum", "truncated", "silence")


@dataclass(frozen=True)
class Frame:
    """Bytes a device model wants on the wire, with the values they encode (if any)."""

    raw: bytes
    truth: dict[str, Any] | None = None


@dataclass
class DeviceModel:
    """Base class for device behaviour; subclasses override what they need."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def on_input(self, data: bytes, now: float) -> list[Frame]:
        """Bytes the host wrote; return the replies."""
        return []

    def tick(self, now: float) -> list[Frame]:
        """Called every few ms; return unsolicited frames (periodic output)."""
        return []

    def reset(self) -> None:
        """The device was power-cycled (replugged): forget session state."""

    def corrupt_checksum(self, raw: bytes) -> bytes:
        """The frame with a wrong checksum. Default: flip the last payload byte."""
        body = raw.rstrip(b"\r\n")
        tail = raw[len(body) :]
        return body[:-1] + bytes([body[-1] ^ 0x01]) + tail if body else raw

    def noise(self) -> bytes:
        """Line noise: random bytes (never a newline, so it prefixes the next frame)."""
        n = self.rng.randint(3, 16)
        return bytes(
            self.rng.choice([b for b in range(256) if b not in (0x0A, 0x0D)]) for _ in range(n)
        )


class PtySimulator:
    """Run ``model`` on a pty whose slave is reachable at ``<directory>/<link_name>``."""

    def __init__(
        self,
        directory: str | Path,
        model: DeviceModel,
        link_name: str = "sim",
        tick_s: float = 0.005,
    ) -> None:
        self.model = model
        self.path = Path(directory) / f"usb-machi_{link_name}-if00-port0"
        self.tick_s = tick_s
        self.sent: list[dict[str, Any]] = []
        self.faulted: list[tuple[str, bytes]] = []
        self.received = bytearray()
        self._fault: str | None = None
        self._fault_left: int | None = None
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Self:
        self._plug()
        self._thread = threading.Thread(target=self._run, name=f"sim:{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._unplug()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """The device disappears: the symlink goes away and the pty closes (EIO for readers)."""
        self._unplug()

    def replug(self) -> None:
        """The device comes back on a fresh pty behind the same symlink path."""
        with self._lock:
            if self._master is None:
                self.model.reset()
                self._plug()

    def _plug(self) -> None:
        with self._lock:
            master, slave = os.openpty()
            # Raw until the client configures it: otherwise the line discipline would
            # echo our own output back to us.
            tty.setraw(slave)
            os.set_blocking(master, False)
            tmp = self.path.with_name(self.path.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)
            self._master, self._slave = master, slave

    def _unplug(self) -> None:
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    # -- faults ----------------------------------------------------------------------
    def set_fault(self, mode: str | None, frames: int | None = None) -> None:
        """Apply ``mode`` to the next ``frames`` frames (None: until cleared).

        ``"disappear"`` unplugs the device (use :meth:`replug` to bring it back).
        """
        if mode == "disappear":
            self.unplug()
            return
        if mode is not None and mode not in FAULTS:
            raise ValueError(f"unknown fault {mode!r}; use one of {FAULTS + ('disappear',)}")
        with self._lock:
            self._fault, self._fault_left = mode, frames

    def clear_fault(self) -> None:
        self.set_fault(None)

    def wait_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` intact frames with truth were sent; return them."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulator sent {len(self.sent)} frames, wanted {n}")
            time.sleep(0.01)
        return list(self.sent)

    def _take_fault(self) -> str | None:
        with self._lock:
            mode = self._fault
            if mode is not None and self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left <= 0:
                    self._fault, self._fault_left = None, None
            return mode

    # -- device thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            frames: list[Frame] = []
            if master is None:
                time.sleep(self.tick_s)
            else:
                try:
                    ready, _, _ = select.select([master], [], [], self.tick_s)
                    data = os.read(master, 4096) if ready else b""
                except OSError:
                    data = b""  # closed under us by unplug(), or no reader yet (EIO)
                if data:
                    self.received.extend(data)
                    frames += self.model.on_input(data, time.monotonic())
            frames += self.model.tick(time.monotonic())
            for frame in frames:
                self._emit(frame)

    def _emit(self, frame: Frame) -> None:
        mode = self._take_fault()
        raw = frame.raw
        if mode == "silence":
            self.faulted.append((mode, raw))
            return
        if mode == "noise":
            raw = self.model.noise() + raw
        elif mode == "bad_checksum":
            raw = self.model.corrupt_checksum(raw)
        elif mode == "truncated":
            raw = raw[: max(1, len(raw) // 2)]
        if not self._write(raw):
            return
        if mode in ("bad_checksum", "truncated"):
            self.faulted.append((mode, raw))
        elif frame.truth is not None:
            self.sent.append(frame.truth)

    def _write(self, raw: bytes) -> bool:
        with self._lock:
            if self._master is None:
                return False
            view = memoryview(raw)
            deadline = time.monotonic() + 0.2
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except OSError as exc:
                    # EAGAIN: nobody is draining the port; a UART would transmit into
                    # the void, so drop the rest after a short wait.
                    if exc.errno != errno.EAGAIN or time.monotonic() > deadline:
                        return False
                    time.sleep(0.005)
            return True
