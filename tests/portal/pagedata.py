"""Read the figures a rendered page shows (``<li data-kpi=...><data value=...>``)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.current: str | None = None
        self.found: dict[str, float | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "li" and a.get("data-kpi"):
            self.current = a["data-kpi"]
            self.found[self.current] = None
        elif tag == "data" and self.current is not None and a.get("value") is not None:
            self.found[self.current] = float(a["value"] or "nan")

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self.current = None


def page_figures(html: str) -> dict[str, float | None]:
    """``{"green.energy_consumption_kwh": 123.4, ...}``; None where no figure is shown."""
    p = _Figures()
    p.feed(html)
    return p.found
