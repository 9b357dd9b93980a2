"""Smart meter over the B-route: Wi-SUN SK session + ECHONET Lite Get every interval.

Session: SKSETPWD, SKSETRBID, SKSCAN (EPANDESC ... EVENT 22, widening the duration on
retry), SKSREG S2/S3, SKLL64, SKJOIN (EVENT 25 ok / 24 failed). Then each ``read()``
sends one Get of E7/E8/E0/E3 with SKSENDTO and waits for the meter's ERXUDP reply.
EVENT 29 (session lifetime over), EVENT 24 or too many unanswered Gets -> rejoin on
the next ``read()``. Works with command echo on or off.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from firmware_bridge.base import DecodeError, PollClock
from firmware_bridge.config import SourceConfig
from firmware_bridge.echonet_broute import frame as el
from firmware_bridge.echonet_broute.sk import ECHONET_PORT, parse_epandesc, parse_erxudp
from firmware_bridge.serialport import LinePortSource

log = logging.getLogger(__name__)
MODULES = ("bp35a1", "bp35c0")  # bp35a1 also covers RL7023 Stick-D; bp35c0 covers C2
READ_EPCS = [el.E_POWER, el.E_CURRENT, el.E_IMPORT, el.E_EXPORT]
SCALE_EPCS = [el.E_UNIT, el.E_COEFFICIENT, el.E_DIGITS]
MAX_MISSES = 3
# EVENT <num> <ipv6> [side] [param]: anything else starting "EVENT" is a damaged line.
_EVENT = re.compile(r"EVENT [0-9A-F]{2} [0-9A-F:]{2,39}( [0-9A-F]{1,2}){0,2}\Z")


class SessionError(Exception):
    """The join or a command failed; the source retries on the next read()."""


class BrouteSource(LinePortSource):
    kind = "energy_meter"

    def __init__(
        self,
        port: str,
        broute_id: str,
        broute_password: str,
        *,
        module: str = "bp35a1",
        baudrate: int = 115200,
        interval_s: float = 60.0,
        timeout_s: float = 10.0,
        join_timeout_s: float = 60.0,
        scan_durations: tuple[int, ...] = (6, 7, 8),
    ) -> None:
        super().__init__(port, baudrate, max_line=1024)
        self.rbid, self.password, self.module = broute_id, broute_password, module
        self.timeout_s, self.join_timeout_s = timeout_s, join_timeout_s
        self.scan_durations = scan_durations
        self._ipv6: str | None = None
        self._joined = False
        self._scale: el.Scale | None = None
        self._tid = 0
        self._misses = 0
        self._poll = PollClock(interval_s)
        self.joins = 0  # how many times a session was set up (for tests and status)

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> BrouteSource:
        rbid = cfg.str_("broute_id", hint="add broute_id = the 32-character B-route ID")
        pwd = cfg.str_("broute_password", hint="add broute_password = the 12-character password")
        if len(rbid) != 32 or not rbid.isalnum():
            raise cfg.error("broute_id must be the 32 letters/digits from the power company")
        if len(pwd) != 12 or not pwd.isalnum():
            raise cfg.error("broute_password must be the 12 letters/digits from the power company")
        module = cfg.str_("module", "bp35a1")
        if module not in MODULES:
            raise cfg.error(f"module must be one of {MODULES} (RL7023 Stick-D: bp35a1)")
        return cls(
            cfg.str_("port"),
            rbid,
            pwd,
            module=module,
            baudrate=cfg.int_("baudrate", 115200, lo=9600, hi=921600),
            interval_s=cfg.float_("interval_s", 60.0, lo=0.05, hi=3600),
            timeout_s=cfg.float_("timeout_s", 10.0, lo=0.1, hi=120),
            join_timeout_s=cfg.float_("join_timeout_s", 60.0, lo=0.5, hi=600),
        )

    @property
    def c_series(self) -> bool:
        return self.module == "bp35c0"

    # -- Source protocol -------------------------------------------------------------
    def open(self) -> None:
        super().open()
        self._joined, self._scale, self._misses = False, None, 0
        self._poll.reset()

    def close(self) -> None:
        super().close()
        self._joined = False

    def read(self) -> list[dict[str, Any]]:
        self._poll.wait()
        try:
            if not self._joined:
                self._join()
            if self._scale is None:
                reply = self._get(SCALE_EPCS)
                if reply is None:
                    return []
                scale = el.Scale()
                el.update_scale(reply, scale)
                self._scale = scale
            reply = self._get(READ_EPCS)
        except SessionError as exc:
            log.warning("B-route session: %s; will rejoin", exc)
            self._joined = False
            return []
        except DecodeError as exc:
            self.reject(exc.reason, str(exc).encode())
            return []
        if reply is None:
            return []
        try:
            reading = el.to_reading(reply, self._scale)
        except DecodeError as exc:
            raw = el.build_frame(reply.tid, reply.seoj, reply.deoj, reply.esv, list(reply.props))
            self.reject(exc.reason, raw)
            return []
        if "power_w" not in reading:  # the contract needs power_w
            self.reject("no_power", repr(reply.props).encode())
            return []
        return [reading]

    # -- SK session ------------------------------------------------------------------
    def _send(self, command: str, payload: bytes = b"") -> None:
        self._port.write(command.encode("ascii") + (payload if payload else b"\r\n"))

    def _line(self, deadline: float) -> str | None:
        """Next meaningful line before ``deadline``; echoes and blanks are skipped."""
        while (left := deadline - time.monotonic()) > 0:
            raw = self._port.readline(left)
            if raw is None:
                return None
            try:
                line = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                self.reject("noise", raw)
                continue
            if not line or line.startswith(("SK", "WOPT", "ROPT")):
                continue  # blank, or our own command echoed back (echo on)
            if not line.isprintable():
                self.reject("noise", raw)
                continue
            if line.startswith("EVENT 29") or line.startswith("EVENT 24"):
                self._joined = False
                raise SessionError(f"module reported {line!r}")
            return line
        return None

    def _expect_ok(self, command: str) -> None:
        self._send(command)
        deadline = time.monotonic() + self.timeout_s
        while (line := self._line(deadline)) is not None:
            if line == "OK":
                return
            if line.startswith("FAIL"):
                raise SessionError(f"{command.split()[0]} answered {line}")
            self._other(line)
        raise SessionError(f"no OK for {command.split()[0]} within {self.timeout_s} s")

    def _other(self, line: str) -> None:
        """A line that is not the answer we wait for: keep it if it is not normal traffic."""
        if line == "OK" or _EVENT.match(line) or line.startswith(("ERXUDP", "EVER", "EINFO")):
            return  # beacons, PANA traffic, transmit results: expected chatter
        self.reject("noise", line.encode())

    def _join(self) -> None:
        self._expect_ok(f"SKSETPWD C {self.password}")
        self._expect_ok(f"SKSETRBID {self.rbid}")
        pan = self._scan()
        self._expect_ok(f"SKSREG S2 {pan['Channel']}")
        self._expect_ok(f"SKSREG S3 {pan['Pan ID']}")
        self._send(f"SKLL64 {pan['Addr']}")
        deadline = time.monotonic() + self.timeout_s
        while (line := self._line(deadline)) is not None and not line.startswith("FE80"):
            self._other(line)
        if line is None:
            raise SessionError("SKLL64 gave no IPv6 address")
        self._ipv6 = line
        self._expect_ok(f"SKJOIN {self._ipv6}")
        deadline = time.monotonic() + self.join_timeout_s
        while (line := self._line(deadline)) is not None:
            if line.startswith("EVENT 25"):
                self._joined, self._misses = True, 0
                self.joins += 1
                return
            self._other(line)
        raise SessionError(f"SKJOIN: no EVENT 25 within {self.join_timeout_s} s")

    def _scan(self) -> dict[str, str]:
        for duration in self.scan_durations:
            extra = " 0" if self.c_series else ""
            self._expect_ok(f"SKSCAN 2 FFFFFFFF {duration}{extra}")
            found: dict[str, str] | None = None
            block: list[str] | None = None
            deadline = time.monotonic() + self.timeout_s + 2 ** min(duration, 10) * 0.01
            while (line := self._line(deadline)) is not None:
                if line == "EPANDESC":
                    block = []
                elif line.startswith("EVENT 22"):
                    break
                elif block is not None and ":" in line:
                    block.append(line)
                else:
                    self._other(line)
            if block:
                try:
                    found = parse_epandesc(block)
                except DecodeError as exc:
                    self.reject(exc.reason, "\n".join(block).encode())
            if found:
                return found
        raise SessionError("scan found no smart meter (check antenna, B-route ID)")

    def _get(self, epcs: list[int]) -> el.Frame | None:
        """One Get and its reply, or None (counted as a miss; too many -> rejoin)."""
        assert self._ipv6 is not None
        self._tid = (self._tid + 1) & 0xFFFF
        req = el.build_get(self._tid, epcs)
        side = " 0" if self.c_series else ""
        self._send(f"SKSENDTO 1 {self._ipv6} {ECHONET_PORT:04X} 1{side} {len(req):04X} ", req)
        deadline = time.monotonic() + self.timeout_s
        while (line := self._line(deadline)) is not None:
            if not line.startswith("ERXUDP"):
                if line.startswith("FAIL"):
                    raise SessionError(f"SKSENDTO answered {line}")
                self._other(line)
                continue
            try:
                rx = parse_erxudp(line)
                if rx.rport != ECHONET_PORT or rx.lport != ECHONET_PORT:
                    continue  # PANA (0x02CC) or other UDP traffic
                reply = el.parse_frame(rx.data)
            except DecodeError as exc:
                self.reject(exc.reason, line.encode())
                continue
            if reply.tid != self._tid or reply.seoj[:2] != el.METER[:2]:
                continue  # a late reply to an earlier Get, or another node
            if reply.esv not in (el.GET_RES, el.GET_SNA):
                continue  # INF notifications etc.
            self._misses = 0
            return reply
        self._misses += 1
        if self._misses >= MAX_MISSES:
            raise SessionError(f"{self._misses} Gets in a row unanswered")
        return None
