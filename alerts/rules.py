"""The routing rules file (TOML): which alerts go to whom, tier by tier.

Everything is checked when the file is loaded, so a bad file stops ``machi alerts run``
at start with one line that says what is wrong (never at 3 a.m.). See docs/alerts.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.channels import check_url, display
from contract.ids import check_id
from contract.rules import ALERT_PRIORITIES, ALL_ALERT_TYPES, PRIORITIES
from contract.settings import ConfigError

__all__ = ["Route", "Rules", "RulesError", "Tier", "load_rules", "parse_rules"]


class RulesError(ConfigError):
    """The rules file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Tier:
    notify: tuple[str, ...]
    ack_within_s: float


@dataclass(frozen=True)
class Route:
    types: tuple[str, ...]
    sites: tuple[str, ...]
    tiers: tuple[Tier, ...]

    def matches(self, alert_type: str, site: str) -> bool:
        return ("*" in self.types or alert_type in self.types) and (
            "*" in self.sites or site in self.sites
        )


@dataclass(frozen=True)
class Rules:
    routes: tuple[Route, ...]
    priorities: dict[str, str] = field(default_factory=lambda: dict(ALERT_PRIORITIES))

    def route_for(self, alert_type: str, site: str) -> int | None:
        """Index of the first route that matches, or None."""
        for i, r in enumerate(self.routes):
            if r.matches(alert_type, site):
                return i
        return None

    def priority(self, alert_type: str) -> str:
        return self.priorities.get(alert_type, "low")

    def urls(self) -> list[str]:
        return [u for r in self.routes for t in r.tiers for u in t.notify]

    def unrouted_types(self) -> list[str]:
        """Alert types no route takes at any site (worth a warning at start)."""
        return [
            t
            for t in ALL_ALERT_TYPES
            if not any(("*" in r.types or t in r.types) for r in self.routes)
        ]


def load_rules(path: Path) -> Rules:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"rules file {path}: cannot read it: {exc.strerror}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "rules") -> Rules:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {source}: not valid TOML: {exc}") from None
    try:
        return _build(doc)
    except ValueError as exc:
        raise RulesError(f"rules file {source}: {exc}") from None


def _build(doc: dict[str, Any]) -> Rules:
    _no_extra(doc, {"route", "priorities"}, "the file")
    raw_routes = doc.get("route")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ValueError("no [[route]]: give at least one route with types, sites and tiers")
    routes = tuple(_route(i, r) for i, r in enumerate(raw_routes, 1))
    prios = dict(ALERT_PRIORITIES)
    raw_p = doc.get("priorities", {})
    if not isinstance(raw_p, dict):
        raise ValueError("[priorities] must be a table of alert type = priority")
    for t, p in raw_p.items():
        if t not in ALL_ALERT_TYPES:
            raise ValueError(f"[priorities]: unknown alert type {t!r} (known: {_known()})")
        if p not in PRIORITIES:
            raise ValueError(f"[priorities] {t} = {p!r}: use one of {', '.join(PRIORITIES)}")
        prios[t] = p
    return Rules(routes, prios)


def _route(i: int, r: Any) -> Route:
    where = f"route {i}"
    if not isinstance(r, dict):
        raise ValueError(f"{where} must be a table")
    _no_extra(r, {"types", "sites", "tiers"}, where)
    types = _str_list(r.get("types"), f"{where} types")
    for t in types:
        if t != "*" and t not in ALL_ALERT_TYPES:
            raise ValueError(f"{where}: unknown alert type {t!r} (known: {_known()}, or '*')")
    sites = _str_list(r.get("sites", ["*"]), f"{where} sites")
    for s in sites:
        if s != "*":
            check_id(s, f"{where} site")
    raw_tiers = r.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise ValueError(
            f"{where} has no tiers: give tiers = [{{ notify = [...], ack_within_s = 60 }}]"
        )
    return Route(
        types, sites, tuple(_tier(f"{where} tier {j}", t) for j, t in enumerate(raw_tiers, 1))
    )


def _tier(where: str, t: Any) -> Tier:
    if not isinstance(t, dict):
        raise ValueError(f"{where} must be a table {{ notify = [...], ack_within_s = N }}")
    _no_extra(t, {"notify", "ack_within_s"}, where)
    urls = _str_list(t.get("notify"), f"{where} notify")
    for u in urls:
        try:
            check_url(u)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if len(set(urls)) != len(urls):
        raise ValueError(f"{where}: a recipient is listed twice")
    ack = t.get("ack_within_s")
    if isinstance(ack, bool) or not isinstance(ack, int | float) or not 1 <= ack <= 7 * 86400:
        raise ValueError(f"{where}: ack_within_s must be a number of seconds from 1 to 604800")
    return Tier(urls, float(ack))


def _str_list(v: Any, where: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"{where} must be a non-empty list of strings")
    return tuple(v)


def _no_extra(d: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ValueError(
            f"{where}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _known() -> str:
    return ", ".join(ALL_ALERT_TYPES)


def describe(rules: Rules) -> list[dict[str, Any]]:
    """The routes with recipients shown without credentials (for logs and --print-config)."""
    return [
        {
            "types": list(r.types),
            "sites": list(r.sites),
            "tiers": [
                {"notify": [display(u) for u in t.notify], "ack_within_s": t.ack_within_s}
                for t in r.tiers
            ],
        }
        for r in rules.routes
    ]
