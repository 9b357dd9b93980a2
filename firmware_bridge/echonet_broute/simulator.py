"""A Wi-SUN module + smart meter on a pty: answers the SK commands, scan/join events
and ECHONET Lite Gets with ERXUDP lines in a chosen layout.

``layout``: ``"a1"`` (BP35A1/RL7023, no side), ``"c0"`` (side), ``"c0_lqi"`` (LQI +
side, SA2=1). ``echo`` repeats each command line first, as the modules do by default.
``sim.sent`` holds the exact contract reading of every intact Get_Res with 0xE7.

The meter keeps half-hour history as a real one does: its cumulative counters are a
function of *meter time* (``meter_time``, settable so a test can jump hours ahead),
0xEA/0xEB answer the newest :00/:30 boundary, 0xE2/0xE4 the day chosen with 0xE5
(``history_days`` days kept, older ones no data), and 0xEC the segments chosen with
0xED (``history2=False``: an older meter without 0xEC/0xED, which refuses them).
:meth:`BrouteModel.fixed_truth` is the fixed-time reading the source must produce for
a boundary.
"""

from __future__ import annotations

import datetime as dt
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.echonet_broute import frame as el
from firmware_bridge.pty import DeviceModel, Frame, PtySimulator

METER_MAC = "00135000ABCD1234"
METER_IP = "FE80:0000:0000:0000:0213:5000:ABCD:1234"
MODULE_IP = "FE80:0000:0000:0000:021D:1290:1234:5678"
RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "0123456789AB"  # noqa: S105 - the simulated meter's fake credential


@dataclass
class BrouteModel(DeviceModel):
    layout: str = "a1"
    echo: bool = True
    rbid: str = RBID
    password: str = PASSWORD
    unit_code: int = 0x01  # 0.1 kWh
    refuse_coefficient: bool = True  # answer 0xD3 with Get_SNA / PDC 0, as many meters do
    answer_gets: bool = True
    meter_time: float | None = None  # epoch seconds of the meter's clock; None: real time
    history_days: int = 45
    history2: bool = True
    #: (ESV, EPC) of every request the meter answered, for tests
    requests: list[tuple[int, int]] = field(default_factory=list)
    _hist_day: int = 0
    _hist2: tuple[int, int] | None = None  # (newest boundary ms, segments) set by 0xED
    _buf: bytearray = field(default_factory=bytearray)
    _pwd: str = ""
    _id: str = ""
    _joined: bool = False
    _n: int = 0

    def reset(self) -> None:
        self._buf.clear()
        self._pwd = self._id = ""
        self._joined = False

    @property
    def side(self) -> str:
        return "" if self.layout == "a1" else " 0"

    def expire_session(self) -> Frame:
        """EVENT 29: the PANA session lifetime ran out (emit with ``sim.inject``)."""
        self._joined = False
        return Frame(f"EVENT 29 {METER_IP}{self.side}\r\n".encode())

    def values(self) -> tuple[int, int, int, int, int]:
        n = self._n
        power = -840 if n % 5 == 4 else 632 + n  # export every fifth reading
        return power, 30 + n % 3, 50, 123456 + n * 3, 789 + n

    # -- the meter's half-hour counters ------------------------------------------------
    def now_s(self) -> float:
        return time.time() if self.meter_time is None else self.meter_time

    @staticmethod
    def counters(t_ms: int) -> tuple[int, int]:
        """Cumulative (import, export) counts at ``t_ms``, in 0xE1 units, uneven from one
        half-hour to the next; they wrap at the 6 effective digits (0xD7) as meters do."""
        minutes = t_ms // 60_000
        return (minutes * 3 + (minutes // 30) % 5) % 10**6, (minutes // 3) % 10**6

    def newest_boundary_ms(self) -> int:
        now_ms = int(self.now_s() * 1000)
        return now_ms - now_ms % el.HALF_HOUR_MS

    def kept(self, t_ms: int) -> bool:
        """The meter has a value for boundary ``t_ms`` (past, within its history)."""
        newest = self.newest_boundary_ms()
        today = dt.datetime.fromtimestamp(newest / 1000, el.METER_TZ).date()
        day = dt.datetime.fromtimestamp(t_ms / 1000, el.METER_TZ).date()
        return t_ms <= newest and (today - day).days < self.history_days

    def fixed_truth(self, t_ms: int) -> dict[str, Any]:
        mul, div = el.UNIT_CODES[self.unit_code]
        imp, exp = self.counters(t_ms)
        return {"t": t_ms, "fixed_import_kwh": imp * mul / div, "fixed_export_kwh": exp * mul / div}

    def _stamp(self, t_ms: int) -> bytes:
        w = dt.datetime.fromtimestamp(t_ms / 1000, el.METER_TZ)
        return struct.pack(">HBBBBB", w.year, w.month, w.day, w.hour, w.minute, w.second)

    def _count(self, t_ms: int, export: bool) -> bytes:
        if not self.kept(t_ms):
            return struct.pack(">I", 0xFFFFFFFE)  # no data
        return struct.pack(">I", self.counters(t_ms)[1 if export else 0])

    def _history1(self, export: bool) -> bytes:
        newest = self.newest_boundary_ms()
        today = dt.datetime.fromtimestamp(newest / 1000, el.METER_TZ).date()
        day = today - dt.timedelta(days=self._hist_day)
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=el.METER_TZ)
        base = el.epoch_ms(midnight)
        slots = b"".join(
            self._count(base + i * el.HALF_HOUR_MS, export) for i in range(el.HISTORY_SLOTS)
        )
        return struct.pack(">H", self._hist_day) + slots

    def _history2(self) -> bytes:
        assert self._hist2 is not None
        newest, n = self._hist2
        head = self._stamp(newest)[:6] + bytes([n])
        segs = b"".join(
            self._count(newest - i * el.HALF_HOUR_MS, False)
            + self._count(newest - i * el.HALF_HOUR_MS, True)
            for i in range(n)
        )
        return head + segs

    def on_input(self, data: bytes, now: float) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while True:
            if self._buf.startswith(b"SKSENDTO"):
                head_end = self._sendto_header_end()
                if head_end is None:
                    return out
                tokens = self._buf[:head_end].decode("ascii", "replace").split()
                length = int(tokens[-1], 16)
                if len(self._buf) < head_end + length:
                    return out
                payload = bytes(self._buf[head_end : head_end + length])
                del self._buf[: head_end + length]
                out += self._sendto(tokens, payload)
                continue
            nl = self._buf.find(b"\r\n")
            if nl < 0:
                return out
            line = self._buf[:nl].decode("ascii", "replace")
            del self._buf[: nl + 2]
            out += self._command(line)

    def _sendto_header_end(self) -> int | None:
        # SKSENDTO handle ip port sec [side] LEN<space>: the binary data follows.
        want = 7 if self.layout != "a1" else 6
        idx, spaces = 0, 0
        while spaces < want:
            idx = self._buf.find(b" ", idx) + 1
            if idx == 0:
                return None
            spaces += 1
        return idx

    def _lines(self, *lines: str) -> list[Frame]:
        return [Frame(f"{line}\r\n".encode()) for line in lines]

    def _command(self, line: str) -> list[Frame]:
        out = self._lines(line) if self.echo else []
        cmd, *args = line.split()
        if cmd == "SKSETPWD" and len(args) == 2:
            self._pwd = args[1]
            return out + self._lines("OK")
        if cmd == "SKSETRBID" and len(args) == 1:
            self._id = args[0]
            return out + self._lines("OK")
        if cmd == "SKSREG":
            return out + self._lines("OK")
        if cmd == "SKSCAN":
            ok = len(args) == (4 if self.layout != "a1" else 3)
            if not ok:
                return out + self._lines("FAIL ER04")
            block = [
                "EPANDESC",
                "  Channel:21",
                "  Channel Page:09",
                "  Pan ID:8888",
                f"  Addr:{METER_MAC}",
                "  LQI:E1",
            ]
            if self.layout != "a1":
                block.append("  Side:0")
            block.append("  PairID:00AABBCC")
            return out + self._lines("OK", *block, f"EVENT 22 {MODULE_IP}{self.side}")
        if cmd == "SKLL64" and args == [METER_MAC]:
            return out + self._lines(METER_IP)
        if cmd == "SKJOIN" and args == [METER_IP]:
            if (self._pwd, self._id) != (self.password, self.rbid):
                return out + self._lines("OK", f"EVENT 24 {METER_IP}{self.side}")
            self._joined = True
            return out + self._lines("OK", f"EVENT 25 {METER_IP}{self.side}")
        return out + self._lines("FAIL ER04")

    def _sendto(self, tokens: list[str], payload: bytes) -> list[Frame]:
        out = self._lines(" ".join(tokens)) if self.echo else []
        out += self._lines(f"EVENT 21 {METER_IP}{self.side} 00", "OK")
        if not self._joined or not self.answer_gets:
            return out
        try:
            req = el.parse_frame(payload)
        except Exception:  # noqa: BLE001 - a real meter ignores frames it cannot parse
            return out
        if req.deoj != el.METER:
            return out
        if req.esv == el.SETC:
            return out + [self._set(req)]
        if req.esv != el.GET:
            return out
        return out + [self._reply(req)]

    def _set(self, req: el.Frame) -> Frame:
        props: list[tuple[int, bytes]] = []
        ok = True
        for epc, edt in req.props:
            self.requests.append((el.SETC, epc))
            if epc == el.E_HISTORY_DAY and len(edt) == 1 and edt[0] <= el.MAX_HISTORY_DAY:
                self._hist_day = edt[0]
                props.append((epc, b""))  # Set_Res: PDC 0
            elif epc == el.E_HISTORY2_AT and self.history2 and len(edt) == 7:
                y, mo, d, h, mi, n = struct.unpack(">HBBBBB", edt)
                when = dt.datetime(y, mo, d, h, mi, tzinfo=el.METER_TZ)
                self._hist2 = (el.epoch_ms(when), n)
                props.append((epc, b""))
            else:
                props.append((epc, edt))  # SetC_SNA echoes the refused EDT
                ok = False
        esv = el.SET_RES if ok else el.SETC_SNA
        return Frame(self.erxudp(el.build_frame(req.tid, el.METER, el.CONTROLLER, esv, props)))

    def _reply(self, req: el.Frame) -> Frame:
        props: list[tuple[int, bytes]] = []
        sna = False
        truth: dict[str, Any] | None = None
        epcs = [epc for epc, _ in req.props]
        if el.E_POWER in epcs:
            self._n += 1
        power, r, t, imp, exp = self.values()
        for epc in epcs:
            if epc == el.E_POWER:
                props.append((epc, struct.pack(">i", power)))
            elif epc == el.E_CURRENT:
                props.append((epc, struct.pack(">hh", r, t)))
            elif epc == el.E_IMPORT:
                props.append((epc, struct.pack(">I", imp)))
            elif epc == el.E_EXPORT:
                props.append((epc, struct.pack(">I", exp)))
            elif epc == el.E_UNIT:
                props.append((epc, bytes([self.unit_code])))
            elif epc == el.E_DIGITS:
                props.append((epc, b"\x06"))
            elif epc == el.E_COEFFICIENT and not self.refuse_coefficient:
                props.append((epc, struct.pack(">I", 1)))
            elif epc in (el.E_FIXED_IMPORT, el.E_FIXED_EXPORT):
                newest = self.newest_boundary_ms()
                export = epc == el.E_FIXED_EXPORT
                props.append((epc, self._stamp(newest) + self._count(newest, export)))
            elif epc in (el.E_HISTORY_IMPORT, el.E_HISTORY_EXPORT):
                self.requests.append((el.GET, epc))
                props.append((epc, self._history1(epc == el.E_HISTORY_EXPORT)))
            elif epc == el.E_HISTORY2 and self.history2 and self._hist2 is not None:
                self.requests.append((el.GET, epc))
                props.append((epc, self._history2()))
            else:
                props.append((epc, b""))
                sna = True
        if el.E_POWER in epcs:
            mul, div = el.UNIT_CODES[self.unit_code]
            truth = {
                "power_w": float(power),
                "current_a": round((r + t) / 10, 1),
                "energy_import_kwh": imp * mul / div,
                "energy_export_kwh": exp * mul / div,
            }
        data = el.build_frame(
            req.tid, el.METER, el.CONTROLLER, el.GET_SNA if sna else el.GET_RES, props
        )
        return Frame(self.erxudp(data), truth)

    def erxudp(self, data: bytes) -> bytes:
        head = f"ERXUDP {METER_IP} {MODULE_IP} 0E1A 0E1A {METER_MAC}"
        if self.layout == "c0_lqi":
            head += " E1"
        head += " 1" + self.side
        return f"{head} {len(data):04X} {data.hex().upper()}\r\n".encode()

    def corrupt_checksum(self, raw: bytes) -> bytes:
        # ERXUDP has no checksum; the integrity check we have is datalen vs the data.
        if not raw.startswith(b"ERXUDP"):
            return raw
        parts = raw.split(b" ")
        parts[-2] = b"%04X" % (int(parts[-2], 16) + 1)
        return b" ".join(parts)


class BrouteSimulator(PtySimulator):
    """``with BrouteSimulator(tmp_path, layout="c0") as sim: BrouteSource(str(sim.path), ...)``."""

    def __init__(self, directory: str | Path, link_name: str = "wisun", **model: Any) -> None:
        super().__init__(directory, BrouteModel(**model), link_name)
        self.broute: BrouteModel = self.model  # type: ignore[assignment]

    def expire_session(self) -> None:
        """Send EVENT 29 now and drop the session, as the meter does at lifetime end."""
        self._emit(self.broute.expire_session())
