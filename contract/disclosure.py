"""Disclosure control of care figures: the one set of rules every output applies.

Every care figure that leaves machi (the KPI API, the Grafana care boards, any later
export) goes through these rules, so that no output is weaker than another:

1. **k-threshold.** A row (a site, or the city) with fewer than ``k`` residents is
   suppressed: none of its figures is published. Public callers get ``k_public``
   (default 10); care/operator callers may be given a lower ``k_care``, never below
   ``contract.rules.CARE_K_MIN`` (5).
2. **Small counts.** An alert count under ``small_count`` (default 10) is published as
   the range ``[0, small_count - 1]``, never as a number (public scope), as Japanese
   hospital statistics print "-" and US CMS suppresses cells of 1 to 10.
3. **Complementary suppression** (:func:`protect`). The published table is site x
   (residents, each alert type, alerts_total) plus the city row, tied by linear
   relations: city = sum of sites (per column) and alerts_total = sum of types (per
   row). A hidden cell (1. or 2.) that is the only hidden cell of a relation could be
   recovered by subtraction, so the smallest published cell of that relation is hidden
   too; this repeats until no relation has exactly one hidden cell (a fixpoint). Then
   no hidden cell equals an expression of published cells in one relation.
   Before that, the **group rule**: the rows hidden by 1. must hold at least ``k``
   residents together, or "city minus the published sites" describes a group of fewer
   than k residents (two sites of 3 and 4 residents: 7 people and their alerts). The
   smallest published site row is hidden with them until they do, and the city row when
   no site is left.
4. **Fixed grid for public windows** (:meth:`Policy.on_grid`). Public care figures are
   published only for whole tiles of one partition of time: ``grid_h`` hours (default
   24, at least 24) aligned to ``offset_h`` past 00:00 UTC (default 15: JST days). Tiles
   never overlap and no union of tiles is published, so differencing two public windows
   gains nothing.
   Care/operator callers may ask for any window; the API audits each such access.

Limits (docs/security.md): ranges and exact totals together still bound a hidden
count (an interval, not a value); relations across different tables (e.g. a care-scope
answer next to a public one) are not audited jointly; a determined insider with a care
key is trusted, and audited, not prevented.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from contract.rules import ALERT_TYPES, CARE_K_DEFAULT, check_care_k

__all__ = [
    "CITY",
    "COLUMNS",
    "GRID_H_DEFAULT",
    "GRID_H_MIN",
    "RESIDENTS",
    "SMALL_COUNT_DEFAULT",
    "TOTAL",
    "CareTable",
    "Cell",
    "Policy",
    "Protected",
    "complementary",
    "protect",
]

#: Row key of the city-wide row: not a valid site id, so it cannot clash with one.
CITY: Final = "*"
RESIDENTS: Final = "residents"
TOTAL: Final = "alerts_total"
#: Columns of the care table, in the order the API lists them.
COLUMNS: Final = (RESIDENTS, *ALERT_TYPES, TOTAL)
SMALL_COUNT_DEFAULT: Final = 10
GRID_H_DEFAULT: Final = 24
GRID_H_MIN: Final = 24
#: Tiles start at 00:00 JST (15:00 UTC): the city's day, as residents and the portal count it.
GRID_OFFSET_H_DEFAULT: Final = 15

Cell = tuple[str, str]  # (row: a site id or CITY, column)


@dataclass(frozen=True)
class Policy:
    """The disclosure settings of one deployment (see the module docstring)."""

    k_public: int = CARE_K_DEFAULT
    k_care: int = CARE_K_DEFAULT
    small_count: int = SMALL_COUNT_DEFAULT
    grid_h: int = GRID_H_DEFAULT
    offset_h: int = GRID_OFFSET_H_DEFAULT

    def __post_init__(self) -> None:
        check_care_k(self.k_public, "MACHI_CARE_K")
        check_care_k(self.k_care, "MACHI_CARE_K_CARE")
        if self.k_care > self.k_public:
            raise ValueError(
                f"MACHI_CARE_K_CARE={self.k_care} is above the public MACHI_CARE_K="
                f"{self.k_public}: the care scope may only have the same or a lower k"
            )
        if self.small_count < 1:
            raise ValueError(f"MACHI_CARE_SMALL_COUNT={self.small_count} must be at least 1")
        if self.grid_h < GRID_H_MIN:
            raise ValueError(
                f"MACHI_CARE_GRID_H={self.grid_h} is below {GRID_H_MIN} h: shorter public "
                "windows let residents be singled out by differencing"
            )
        if not 0 <= self.offset_h < self.grid_h:
            raise ValueError(f"MACHI_CARE_GRID_OFFSET_H={self.offset_h} must be in [0, grid)")

    def k(self, public: bool) -> int:
        return self.k_public if public else self.k_care

    def at_least(self, k_public: int) -> Policy:
        """This policy with the public k raised to ``k_public`` if it is lower."""
        return replace(self, k_public=max(self.k_public, k_public))

    # -- the public time grid ----------------------------------------------------------

    @property
    def grid(self) -> timedelta:
        return timedelta(hours=self.grid_h)

    def _origin(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=self.offset_h)

    def tile(self, t: datetime) -> tuple[datetime, datetime]:
        """The grid tile ``[start, end)`` that contains ``t``."""
        n = (t - self._origin()) // self.grid
        start = self._origin() + n * self.grid
        return start, start + self.grid

    def last_tile(self, now: datetime) -> tuple[datetime, datetime]:
        """The newest tile that has ended by ``now``: the public default window."""
        start, _ = self.tile(now)
        return start - self.grid, start

    def on_grid(self, start: datetime, end: datetime) -> bool:
        return self.tile(start) == (start, end)

    def grid_rule(self) -> str:
        """The grid in words, for 422 answers and docs."""
        origin = self._origin().strftime("%H:%M")
        return (
            f"public care figures are published only for fixed windows of {self.grid_h} h "
            f"starting at {origin} UTC (+ a whole number of {self.grid_h} h), e.g. "
            "start=2024-05-01T00:00:00Z&end=2024-05-02T00:00:00Z; without start and end "
            "you get the newest complete window. Care and operator keys may ask for any "
            "window (audited)."
        )


@dataclass(frozen=True)
class CareTable:
    """True care figures of one window: residents per row, alert counts per cell.

    ``residents`` has every site with data and ``CITY`` (distinct wearables city-wide);
    ``alerts`` maps (site, type) to episodes opened. City alerts and totals are sums.
    """

    residents: dict[str, int]
    alerts: dict[Cell, int] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        rows = {r for r in self.residents if r != CITY} | {s for s, _ in self.alerts}
        return sorted(rows)

    def cells(self) -> dict[Cell, int]:
        out: dict[Cell, int] = {}
        for row in [*self.sites, CITY]:
            out[(row, RESIDENTS)] = self.residents.get(row, 0)
            for t in ALERT_TYPES:
                n = (
                    sum(self.alerts.get((s, t), 0) for s in self.sites)
                    if row == CITY
                    else self.alerts.get((row, t), 0)
                )
                out[(row, t)] = n
            out[(row, TOTAL)] = sum(out[(row, t)] for t in ALERT_TYPES)
        return out

    def relations(self) -> list[tuple[Cell, list[Cell]]]:
        """(total cell, its parts): city = sum of sites per column; total = sum of types."""
        rels = [((CITY, c), [(s, c) for s in self.sites]) for c in COLUMNS]
        rels += [((r, TOTAL), [(r, t) for t in ALERT_TYPES]) for r in [*self.sites, CITY]]
        return rels


@dataclass(frozen=True)
class Protected:
    """A care table after disclosure control: what may be published, and how."""

    values: dict[Cell, int]
    hidden: frozenset[Cell]  # published as null
    ranges: dict[Cell, tuple[int, int]]  # published as a range instead of a value
    reasons: dict[Cell, str]  # why each cell is not a plain number

    def value(self, cell: Cell) -> int | None:
        """The published number, or None: hidden, a range, or a row without residents in
        the table (fewer than k: nobody)."""
        if cell in self.hidden or cell in self.ranges or cell not in self.values:
            return None
        return self.values[cell]


def complementary(
    values: dict[Cell, int], relations: Iterable[tuple[Cell, list[Cell]]], primary: set[Cell]
) -> set[Cell]:
    """Complementary suppression to a fixpoint: the hidden set, ``primary`` included.

    While some relation ``total = sum(parts)`` has exactly one hidden cell, also hide its
    smallest published part (the total if no part is left). Each step hides one more
    cell, so this ends after at most ``len(values)`` rounds.
    """
    rels = list(relations)
    hidden = set(primary)
    changed = True
    while changed:
        changed = False
        for total, parts in rels:
            cells = [total, *parts]
            if sum(1 for c in cells if c in hidden) != 1:
                continue
            open_parts = sorted(
                (c for c in parts if c not in hidden), key=lambda c: (values.get(c, 0), c)
            )
            pick = open_parts[0] if open_parts else total
            if pick in hidden:  # a relation of one cell: nothing else can reveal it
                continue
            hidden.add(pick)
            changed = True
    return hidden


def _group_rows(table: CareTable, k: int, small: set[str]) -> set[str]:
    """Rows to hide besides ``small`` so that the hidden sites hold >= k residents
    together (the group rule of the module docstring)."""
    if CITY in small or not small:
        return set()
    hidden = set(small)
    added: set[str] = set()
    while sum(table.residents.get(s, 0) for s in hidden) < k:
        rest = sorted(
            (s for s in table.sites if s not in hidden),
            key=lambda s: (table.residents.get(s, 0), s),
        )
        if not rest:
            return added | {CITY}
        hidden.add(rest[0])
        added.add(rest[0])
    return added


def protect(table: CareTable, k: int, small_count: int | None) -> Protected:
    """Apply rules 1-3 to ``table`` with threshold ``k``; ``small_count`` None turns the
    small-count rule off (care scope)."""
    values = table.cells()
    reasons: dict[Cell, str] = {}
    primary: set[Cell] = set()
    small = {row for row, _ in values if table.residents.get(row, 0) < k}
    group = _group_rows(table, k, small)
    for row, col in values:
        if row in small:
            reasons[(row, col)] = f"suppressed: fewer than k={k} residents"
        elif row in group:
            reasons[(row, col)] = (
                "suppressed (complementary): the suppressed districts together hold fewer "
                f"than k={k} residents"
            )
        else:
            continue
        primary.add((row, col))
    ranges: dict[Cell, tuple[int, int]] = {}
    if small_count is not None:
        for (row, col), n in values.items():
            if col != RESIDENTS and (row, col) not in primary and n < small_count:
                ranges[(row, col)] = (0, small_count - 1)
                reasons[(row, col)] = f"a count under {small_count}, published as a range"
    hidden = complementary(values, table.relations(), primary | set(ranges))
    for cell in hidden - primary - set(ranges):
        reasons[cell] = "suppressed (complementary): it would reveal a suppressed figure"
    return Protected(values, frozenset(hidden - set(ranges)), ranges, reasons)
