"""The differencing attack on published care figures, for the disclosure tests.

Given everything a caller could read (cell -> a number, a ``(lo, hi)`` range or None),
:func:`derivable` finds every cell not published as a number that the care table's
linear relations (city = sum of sites per column, total = sum of types per row) pin to
one value: Gaussian elimination over the rationals. The API, the portal and the Grafana
care boards are all attacked with it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from contract.disclosure import CITY, CareTable, Cell
from contract.events import CARE_ALERT
from contract.influx import InfluxV1
from contract.lineprotocol import FieldValue, line

__all__ = [
    "MIXED_ALERTS",
    "MIXED_RESIDENTS",
    "check_correct",
    "derivable",
    "is_number",
    "relations",
    "truth",
    "write_city",
]

HOUR_MS = 3_600_000

#: A city with big and small counts: sites over and under k, counts over and under the
#: small-count floor (the API's and the boards' attack tests use it).
MIXED_RESIDENTS = {"hama": 40, "kuji": 12, "minato": 25, "taga": 4, "yama": 11}
MIXED_ALERTS: dict[Cell, int] = {
    ("hama", "hr_high"): 30, ("hama", "fall"): 12, ("hama", "spo2_low"): 3,
    ("kuji", "hr_high"): 11, ("kuji", "fall"): 2,
    ("minato", "hr_high"): 15, ("minato", "hr_low"): 10, ("minato", "fall"): 10,
    ("taga", "fall"): 1, ("taga", "hr_high"): 2,
    ("yama", "hr_high"): 13,
}  # fmt: skip

Published = dict[Cell, Any]


def is_number(v: Any) -> bool:
    return isinstance(v, float | int) and not isinstance(v, bool)


def relations(sites: list[str]) -> list[tuple[Cell, list[Cell]]]:
    return CareTable({s: 1 for s in sites} | {CITY: 1}).relations()


def _reduce(vec: list[Fraction], basis: list[tuple[int, list[Fraction]]]) -> list[Fraction]:
    # Basis rows are not in reduced echelon form: repeat until nothing changes.
    for _ in range(len(basis) + 1):
        changed = False
        for piv, b in basis:
            if vec[piv]:
                f = vec[piv] / b[piv]
                vec = [x - f * y for x, y in zip(vec, b, strict=True)]
                changed = True
        if not changed:
            break
    return vec


def derivable(pub: Published, sites: list[str]) -> set[Cell]:
    """Cells of ``pub`` not published as a number whose value the relations determine."""
    unknown = sorted(c for c, v in pub.items() if not is_number(v))
    idx = {c: i for i, c in enumerate(unknown)}
    basis: list[tuple[int, list[Fraction]]] = []
    for total, parts in relations(sites):
        vec = [Fraction(0)] * len(unknown)
        for cell, coef in [(total, -1), *((p, 1) for p in parts)]:
            if cell in idx:
                vec[idx[cell]] += coef
        vec = _reduce(vec, basis)
        piv = next((i for i, x in enumerate(vec) if x), None)
        if piv is not None:
            basis.append((piv, vec))
    found = set()
    for cell, i in idx.items():
        e = [Fraction(int(j == i)) for j in range(len(unknown))]
        if not any(_reduce(e, basis)):
            found.add(cell)
    return found


def check_correct(pub: Published, true: dict[Cell, int]) -> None:
    """Published numbers equal the truth, and published ranges contain it."""
    for cell, v in pub.items():
        if isinstance(v, tuple):
            assert v[0] <= true[cell] <= v[1], cell
        elif v is not None:
            assert v == true[cell], (cell, v, true[cell])


def write_city(
    influx: InfluxV1, residents: dict[str, int], alerts: dict[Cell, int], ms0: int
) -> None:
    """A care city for the tile starting at ``ms0``: ``residents`` wearables per site
    (resident i's heart rate is 60 + i bpm), reporting twice in the tile; ``alerts``
    (site, type) -> episodes opened, spread over the tile; and one episode the next day,
    which must not count."""
    lines = []
    for site, n in residents.items():
        for i in range(n):
            tags = {"device_id": f"{site}-w{i}", "site": site}
            for h in (1, 13):
                fields: dict[str, FieldValue | None] = {"heart_rate_bpm": 60.0 + i, "seq": h}
                lines.append(line("wearable", tags, fields, ms0 + h * HOUR_MS))
    for (site, typ), n in alerts.items():
        for i in range(n):
            tags = {"device_id": f"{site}-w{i % residents[site]}", "site": site, "type": typ}
            t = int(ms0 + (i * 37 % 23 + 0.5) * HOUR_MS)
            for state, at in (("open", t), ("closed", t + 60_000)):
                fields = {"state": state, "value": 1.0, "episode_ms": t}
                lines.append(line(CARE_ALERT, tags, fields, at))
    late = ms0 + 25 * HOUR_MS
    tags = {"device_id": "x", "site": next(iter(residents)), "type": "fall"}
    fields = {"state": "open", "value": 1.0, "episode_ms": late}
    lines.append(line(CARE_ALERT, tags, fields, late))
    r = influx.write_lines("\n".join(lines).encode())
    assert r.status_code == 204, r.text


def truth(residents: dict[str, int], alerts: dict[Cell, int]) -> dict[Cell, int]:
    """The true care table of :func:`write_city`'s city."""
    return CareTable({**residents, CITY: sum(residents.values())}, alerts).cells()
