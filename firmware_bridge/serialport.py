"""A serial port that reads bounded lines and turns port failures into DeviceError.

Shared by the line-oriented sources (NMEA, BLE gateway serial, Wi-SUN SK commands).
"""

from __future__ import annotations

import contextlib
import time

import serial

from firmware_bridge.base import DeviceError, RejectLog


class LinePort:
    """pyserial wrapper: ``readline`` with a deadline and a length cap.

    A line longer than ``max_line`` is returned cut (the caller rejects it) instead of
    growing without bound on a stream of noise without newlines.
    """

    def __init__(self, port: str, baudrate: int, max_line: int = 512) -> None:
        self.port = port
        self.baudrate = baudrate
        self.max_line = max_line
        self._ser: serial.Serial | None = None
        self._buf = bytearray()

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def open(self) -> None:
        self.close()
        try:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=0.05, write_timeout=2)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(
                f"cannot open serial port {self.port}: {exc}; check the cable / device path"
            ) from None
        self._buf.clear()

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            # The device may already be gone; closing must not fail.
            with contextlib.suppress(serial.SerialException, OSError):
                ser.close()

    def _port(self) -> serial.Serial:
        if self._ser is None:
            raise DeviceError(f"serial port {self.port} is not open; call open() first")
        return self._ser

    def write(self, data: bytes) -> None:
        try:
            self._port().write(data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"write to {self.port} failed: {exc}; the device went away") from None

    def readline(self, timeout: float) -> bytes | None:
        """One line including its ``\\n`` (or a cut over-long line), or None on timeout."""
        ser = self._port()
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0 or len(self._buf) >= self.max_line:
                end = nl + 1 if 0 <= nl < self.max_line else self.max_line
                line = bytes(self._buf[:end])
                del self._buf[:end]
                return line
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(f"read from {self.port} failed: {exc}; device gone") from None
            self._buf.extend(chunk)

    def read_exact(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` raw bytes (fewer on timeout), taking buffered bytes first."""
        ser = self._port()
        deadline = time.monotonic() + timeout
        while len(self._buf) < n and time.monotonic() < deadline:
            try:
                self._buf.extend(ser.read(n - len(self._buf)))
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(f"read from {self.port} failed: {exc}; device gone") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class LinePortSource(RejectLog):
    """Base of the sources that talk over one :class:`LinePort`: open, close, rejects."""

    def __init__(self, port: str, baudrate: int, max_line: int) -> None:
        super().__init__()
        self._port = LinePort(port, baudrate, max_line=max_line)

    def open(self) -> None:
        self._port.open()

    def close(self) -> None:
        self._port.close()
