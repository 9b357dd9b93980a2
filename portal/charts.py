"""Trend charts drawn on the server as SVG (no script, no CDN).

A chart is decorative for screen readers' purposes only in part: it carries a title and
a one-sentence description, and the page puts the same numbers in a table next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart"]

W, H = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 36


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"


def bar_chart(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    unit: str,
) -> Markup:
    """Bars for ``values`` (None = no bar) over ``labels``; returns safe SVG markup."""
    shown = [v for v in values if v is not None]
    top = max([*shown, 0.0])
    bottom = min([*shown, 0.0])
    span = (top - bottom) or 1.0
    n = max(len(values), 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / n
    zero_y = TOP + plot_h * (top / span)
    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(description)}</desc>',
        f'<line x1="{LEFT}" y1="{zero_y:.1f}" x2="{W - RIGHT}" y2="{zero_y:.1f}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" class="tick" text-anchor="end">'
        f"{escape(_fmt(top))}</text>",
        f'<text x="{LEFT - 6}" y="{zero_y + 4:.1f}" class="tick" text-anchor="end">'
        f"{escape(_fmt(bottom) if bottom < 0 else '0')}</text>",
        f'<text x="{LEFT - 6}" y="{H - 6}" class="tick" text-anchor="end">{escape(unit)}</text>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + i * slot + slot * 0.15
        if v is not None:
            h = plot_h * abs(v) / span
            y = zero_y - h if v >= 0 else zero_y
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{max(h, 0.5):.1f}" class="bar"><title>{escape(label)}: '
                f"{escape(_fmt(v))} {escape(unit)}</title></rect>"
            )
        if i in (0, n - 1) or (n > 8 and i == n // 2):
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{H - 20}" class="tick" text-anchor="middle">'
                f"{escape(label[5:])}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every interpolated text is escaped above
