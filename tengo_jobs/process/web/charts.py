"""Small inline SVG charts for the dashboard (no script, no style attribute: the CSP allows
neither; colours come from ``dashboard.css`` by class).

:func:`bar_chart` draws one bar per interval, its series stacked (completed, failed, …),
with a ``<title>`` per bar for the tooltip; every text in it is escaped.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from ...durations import ms_to_iso

WIDTH = 12  # per bar, in viewBox units
HEIGHT = 60


def bar_chart(points: list[dict[str, Any]], series: tuple[str, ...] = ("completed", "failed", "cancelled"),
              *, label: str = "runs") -> Markup:
    """A stacked bar chart of ``points`` (``{"at": ms, <series>: n, …}``, oldest first)."""
    peak = max([sum(int(p.get(s) or 0) for s in series) for p in points] + [1])
    width = max(1, len(points)) * WIDTH
    parts = [f'<svg class="chart" viewBox="0 0 {width} {HEIGHT + 1}" '
             f'preserveAspectRatio="none" role="img" aria-label="{escape(label)} per interval">']
    for i, point in enumerate(points):
        x = i * WIDTH
        y = float(HEIGHT)
        counts = ", ".join(f"{s} {int(point.get(s) or 0)}" for s in series)
        parts.append(f'<g><title>{escape(ms_to_iso(point["at"]))}: {escape(counts)}</title>')
        parts.append(f'<rect class="slot" x="{x}" y="0" width="{WIDTH - 2}" height="{HEIGHT}"/>')
        for s in series:
            n = int(point.get(s) or 0)
            if not n:
                continue
            h = HEIGHT * n / peak
            y -= h
            parts.append(f'<rect class="{escape(s)}" x="{x}" y="{y:.2f}" width="{WIDTH - 2}" '
                         f'height="{h:.2f}"/>')
        parts.append("</g>")
    parts.append(f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{width}" y2="{HEIGHT}"/></svg>')
    return Markup("".join(parts))


def ms_text(ms: float | None) -> str:
    """A duration for people: ``840 ms``, ``2.5 s``, ``3.2 min``, ``1.5 h``; ``–`` for none."""
    if ms is None:
        return "–"
    ms = int(ms)
    if ms < 1_000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


__all__ = ["bar_chart", "ms_text"]
