"""Eastron SDM meter over Modbus RTU (pymodbus 3.16) -> contract energy_meter readings."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException

from firmware_bridge.base import DecodeError, DeviceError, PollClock, RejectLog
from firmware_bridge.config import SourceConfig
from firmware_bridge.modbus_sdm.registers import (
    BLOCK_COUNT,
    BLOCK_START,
    DEFAULT_MODEL,
    MODELS,
    crc16,
    decode_block,
)

RESPONSE_LEN = 5 + 2 * BLOCK_COUNT  # unit, fc, byte count, data, crc(2)


class SdmSource(RejectLog):
    """Polls the register block every ``interval_s``; one reading per good response,
    decoded with the register map of ``model`` (see ``registers.MODELS``)."""

    kind = "energy_meter"

    def __init__(
        self,
        port: str,
        unit_id: int = 1,
        baudrate: int = 9600,
        *,
        parity: str = "N",
        interval_s: float = 5.0,
        timeout_s: float = 1.0,
        model: str = DEFAULT_MODEL,
    ) -> None:
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"unknown SDM model {model!r}; use one of {', '.join(MODELS)}")
        self.model = model
        self.port = port
        self.unit_id = unit_id
        self._client = ModbusSerialClient(
            port,
            baudrate=baudrate,
            bytesize=8,
            parity=parity,
            stopbits=1,
            timeout=timeout_s,
            retries=0,
            trace_packet=self._trace,
        )
        self._rx = b""
        self._poll = PollClock(interval_s)

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> SdmSource:
        parity = cfg.str_("parity", "N")
        if parity not in ("N", "E", "O"):
            raise cfg.error(f"parity must be N, E or O, got {parity!r}")
        model = cfg.str_("model", DEFAULT_MODEL).lower()
        if model not in MODELS:
            raise cfg.error(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        return cls(
            cfg.str_("port", hint='add port = "/dev/serial/by-id/..." (the RS-485 adapter)'),
            cfg.int_("unit_id", 1, lo=1, hi=247),
            cfg.int_("baudrate", 9600, lo=1200, hi=115200),
            parity=parity,
            interval_s=cfg.float_("interval_s", 5.0, lo=0.05, hi=3600),
            timeout_s=cfg.float_("timeout_s", 1.0, lo=0.05, hi=30),
            model=model,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx = data  # the receive buffer so far, kept for rejects
        return data

    def open(self) -> None:
        self._client.close()
        # pymodbus logs a failed open as an error itself; we raise instead.
        with _quiet_pymodbus():
            ok = self._client.connect()
        if not ok:
            raise DeviceError(f"cannot open Modbus port {self.port}; check the RS-485 adapter")
        self._poll.reset()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the port may be gone already
            self._client.close()

    def read(self) -> list[dict[str, Any]]:
        self._poll.wait()
        if not self._client.connected:
            raise DeviceError(f"Modbus port {self.port} is closed (device gone); reopen")
        self._rx = b""
        try:
            with _quiet_pymodbus():
                rr = self._client.read_input_registers(
                    BLOCK_START, count=BLOCK_COUNT, device_id=self.unit_id
                )
        except ConnectionException as exc:
            raise DeviceError(f"Modbus port {self.port} failed: {exc}; device gone") from None
        except ModbusException:
            if not self._client.connected:
                raise DeviceError(f"Modbus port {self.port} closed by pymodbus") from None
            self._reject_rx()
            return []
        if rr.isError():
            self.reject(f"exception_{getattr(rr, 'exception_code', 0)}", self._rx)
            return []
        try:
            reading = decode_block(list(rr.registers), self.model)
        except DecodeError as exc:
            self.reject(exc.reason, self._rx)
            return []
        if len(self._rx) > RESPONSE_LEN:  # pymodbus skipped garbage before the frame
            self.reject("noise", self._rx[: len(self._rx) - RESPONSE_LEN])
        return [reading]

    def _reject_rx(self) -> None:
        """No valid response in time: classify what did arrive (nothing = silence)."""
        rx = self._rx
        if not rx:
            return
        if len(rx) < RESPONSE_LEN:
            reason = "truncated"
        elif crc16(rx[-RESPONSE_LEN:-2]) != int.from_bytes(rx[-2:], "little"):
            reason = "bad_checksum"
        elif len(rx) > RESPONSE_LEN:
            reason = "noise"  # a valid frame behind garbage; pymodbus did not resync
        else:
            reason = "malformed"
        self.reject(reason, rx)


@contextlib.contextmanager
def _quiet_pymodbus() -> Any:
    # pymodbus logs every timeout / bad frame at ERROR; we count them as rejects.
    logger = logging.getLogger("pymodbus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
