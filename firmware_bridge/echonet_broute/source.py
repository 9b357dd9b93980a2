"""Smart meter over the B-route: Wi-SUN SK session + ECHONET Lite Get every interval.

Session: SKSETPWD, SKSETRBID, SKSCAN (EPANDESC ... EVENT 22, widening the duration on
retry), SKSREG S2/S3, SKLL64, SKJOIN (EVENT 25 ok / 24 failed). Then each ``read()``
sends one Get of E7/E8/E0/E3 and EA/EB with SKSENDTO and waits for the meter's ERXUDP
reply. EVENT 29 (session lifetime over), EVENT 24 or too many unanswered Gets ->
rejoin on the next ``read()``. Works with command echo on or off.

Half-hour (fixed-time) readings: EA/EB give the meter's cumulative energy at the newest
:00/:30 boundary; a new boundary becomes one fixed-time reading with ``t`` = that
boundary. Boundaries missed (an outage, or the time before the source started, up to
``backfill_days``) are read from the meter's history: 0xED + 0xEC (12 half-hours per
request) on meters that have them, else 0xE5 + 0xE2/0xE4 (one day per request). Each
boundary is emitted once per session; a boundary sent again after a restart is the same
InfluxDB point (same tags and ``t``), so storage holds it once.
"""

from __future__ import annotations

import datetime as dt
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
READ_EPCS = [
    el.E_POWER,
    el.E_CURRENT,
    el.E_IMPORT,
    el.E_EXPORT,
    el.E_FIXED_IMPORT,
    el.E_FIXED_EXPORT,
]
#: The contract accepts readings up to 30 days old; keep a margin for the trip there.
MAX_BACKFILL_DAYS = 29
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
        backfill_days: int = 1,
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
        self.backfill_ms = backfill_days * 48 * el.HALF_HOUR_MS
        #: boundaries emitted (or that the meter has no value for) this session
        self._done: set[int] = set()
        self._history2: bool | None = None  # None: not known yet whether 0xEC/0xED work

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
            backfill_days=cfg.int_("backfill_days", 1, lo=0, hi=MAX_BACKFILL_DAYS),
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
        out: list[dict[str, Any]] = []
        try:
            reading = el.to_reading(reply, self._scale)
        except DecodeError as exc:
            raw = el.build_frame(reply.tid, reply.seoj, reply.deoj, reply.esv, list(reply.props))
            self.reject(exc.reason, raw)
            return []
        if "power_w" in reading:
            out.append(reading)
        else:  # the contract needs power_w
            self.reject("no_power", repr(reply.props).encode())
        try:
            out += self._half_hours(reply)
        except SessionError as exc:
            log.warning("B-route session during backfill: %s; will rejoin", exc)
            self._joined = False
        except DecodeError as exc:
            self.reject(exc.reason, str(exc).encode())
        return out

    # -- half-hour readings ----------------------------------------------------------
    def _fixed(self, t_ms: int, imp: int | None, exp: int | None) -> dict[str, Any] | None:
        assert self._scale is not None
        r: dict[str, Any] = {"t": t_ms}
        if imp is not None:
            r["fixed_import_kwh"] = el.kwh(imp, self._scale.unit, self._scale.coeff)
        if exp is not None:
            r["fixed_export_kwh"] = el.kwh(exp, self._scale.unit, self._scale.coeff)
        return r if len(r) > 1 else None

    def _half_hours(self, reply: el.Frame) -> list[dict[str, Any]]:
        """The newest boundary from EA/EB, after the missed ones from history."""
        assert self._scale is not None
        got: dict[int, int] = {}  # EPC -> newest boundary
        vals: dict[int, int | None] = {}
        for epc, edt in reply.props:
            if epc in (el.E_FIXED_IMPORT, el.E_FIXED_EXPORT) and edt:
                got[epc], vals[epc] = el.fixed_time(epc, edt, self._scale.digits)
        if not got:
            return []  # a meter without EA/EB (or it refused them)
        newest = max(got.values())
        imp = vals.get(el.E_FIXED_IMPORT) if got.get(el.E_FIXED_IMPORT) == newest else None
        exp = vals.get(el.E_FIXED_EXPORT) if got.get(el.E_FIXED_EXPORT) == newest else None
        lo = newest - self.backfill_ms
        self._done = {t for t in self._done if t >= lo}
        missing = [t for t in range(lo, newest, el.HALF_HOUR_MS) if t not in self._done]
        out = self._backfill(missing, newest) if missing else []
        if newest not in self._done:
            latest = self._fixed(newest, imp, exp)
            self._done.add(newest)
            if latest is not None:
                out.append(latest)
        return out

    def _backfill(self, missing: list[int], newest: int) -> list[dict[str, Any]]:
        """Readings for ``missing`` boundaries from the meter's history, oldest first.

        A boundary the meter answers with no data (not kept, or before it was installed)
        is given up; one whose request went unanswered stays missing for the next read.
        """
        found: dict[int, tuple[int | None, int | None]] = {}
        answered: set[int] = set()
        if self._history2 is not False:
            self._from_history2(missing, found, answered)
        if self._history2 is False:
            self._from_history1(missing, newest, found, answered)
        out = []
        for t in sorted(answered):
            self._done.add(t)
            r = self._fixed(t, *found.get(t, (None, None)))
            if r is not None:
                out.append(r)
        return out

    def _from_history2(
        self,
        missing: list[int],
        found: dict[int, tuple[int | None, int | None]],
        answered: set[int],
    ) -> None:
        """0xED (newest time, segments) then Get 0xEC, 12 half-hours at a time."""
        assert self._scale is not None
        todo = sorted(missing, reverse=True)
        while todo:
            top = todo[0]
            n = min(el.HISTORY2_MAX, (top - todo[-1]) // el.HALF_HOUR_MS + 1)
            when = dt.datetime.fromtimestamp(top / 1000, el.METER_TZ)
            ack = self._request(el.SETC, [(el.E_HISTORY2_AT, el.history2_edt(when, n))])
            if ack is None:
                return  # unanswered: try again on the next read
            if ack.esv != el.SET_RES:
                self._history2 = False  # an older meter: use 0xE5 / 0xE2
                return
            reply = self._get([el.E_HISTORY2])
            if reply is None:
                return
            edt = dict(reply.props).get(el.E_HISTORY2, b"")
            if not edt:
                self._history2 = False
                return
            self._history2 = True
            for t, imp, exp in el.history2(edt, self._scale.digits):
                if t in missing:
                    found[t] = (imp, exp)
                    answered.add(t)
            span = top - (n - 1) * el.HALF_HOUR_MS
            todo = [t for t in todo if t < span]

    def _from_history1(
        self,
        missing: list[int],
        newest: int,
        found: dict[int, tuple[int | None, int | None]],
        answered: set[int],
    ) -> None:
        """0xE5 (day) then Get 0xE2 + 0xE4, one day of the meter's calendar at a time."""
        assert self._scale is not None
        today = dt.datetime.fromtimestamp(newest / 1000, el.METER_TZ).date()
        by_day: dict[dt.date, list[int]] = {}
        for t in missing:
            by_day.setdefault(dt.datetime.fromtimestamp(t / 1000, el.METER_TZ).date(), []).append(t)
        for day, ts in sorted(by_day.items(), reverse=True):
            back = (today - day).days
            if back > el.MAX_HISTORY_DAY:
                answered.update(ts)  # beyond what 0xE5 can select: give up
                continue
            ack = self._request(el.SETC, [(el.E_HISTORY_DAY, el.history_day_edt(back))])
            if ack is None:
                return
            if ack.esv != el.SET_RES:
                answered.update(ts)  # the meter does not keep that day
                continue
            reply = self._get([el.E_HISTORY_IMPORT, el.E_HISTORY_EXPORT])
            if reply is None:
                return
            props = dict(reply.props)
            cols: list[list[int | None]] = []
            for epc in (el.E_HISTORY_IMPORT, el.E_HISTORY_EXPORT):
                edt = props.get(epc, b"")
                if not edt:
                    cols.append([None] * el.HISTORY_SLOTS)
                    continue
                got_day, values = el.history1(epc, edt, self._scale.digits)
                if got_day != back:
                    raise DecodeError(f"EPC 0x{epc:02X} answered day {got_day}, asked {back}")
                cols.append(values)
            midnight = el.epoch_ms(dt.datetime(day.year, day.month, day.day, tzinfo=el.METER_TZ))
            for t in ts:
                i = (t - midnight) // el.HALF_HOUR_MS
                found[t] = (cols[0][i], cols[1][i])
                answered.add(t)

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
        return self._request(el.GET, [(epc, b"") for epc in epcs])

    def _request(self, esv: int, props: list[tuple[int, bytes]]) -> el.Frame | None:
        """One Get or SetC and the meter's reply to it, or None (a miss)."""
        assert self._ipv6 is not None
        self._tid = (self._tid + 1) & 0xFFFF
        if esv == el.GET:
            req, answers = el.build_get(self._tid, [e for e, _ in props]), (el.GET_RES, el.GET_SNA)
        else:
            req, answers = el.build_setc(self._tid, props), (el.SET_RES, el.SETC_SNA)
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
                continue  # a late reply to an earlier request, or another node
            if reply.esv not in answers:
                continue  # INF notifications etc.
            self._misses = 0
            return reply
        self._misses += 1
        if self._misses >= MAX_MISSES:
            raise SessionError(f"{self._misses} requests in a row unanswered")
        return None
