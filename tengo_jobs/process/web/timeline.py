"""A run's step timeline as a Gantt chart: the geometry of an inline SVG the run page draws.

Pure computation over the run's stored times (epoch ms), so it is tested without a
browser. The template (``tj/_gantt.html``) draws what :func:`gantt` returns; every text
in it goes through Jinja's autoescaping.

- **Lanes.** Steps are laid out by their time spans, earliest first, each on the first
  lane free at its start: a sequential run is one lane, and parallel branches (spans
  that overlap) get lanes of their own.
- **Bars.** A ``run`` step is a bar from its start to its end (``exec``), preceded by its
  queue delay (``queue``, a lighter shade): from the moment it could start (the end of
  the step before it on its lane, or the run's start) to its start. A step tried more than
  once is one bar per attempt: each failed attempt (``attempts_log``, from
  ``tj_step_attempts``) in the failure colour, followed by its backoff up to the next
  attempt, then the last attempt (the step row: from the end of the last backoff, or its
  logged start when it failed too, to the row's end). A step without a log (rows from
  before migration 0015) stays one bar from its first start to its last end, labelled with
  its attempts.
- **Gaps.** A sleep, a wait for an event and an invoke are drawn as labelled dashed gaps
  (``gap``) over the time they held the run; a step backing off before its next attempt is
  a gap up to that attempt (``backoff``, the failure colour).
- **The run** is a lane above the steps: queued from creation to its first start
  (``queue``), then its execution up to its end or now (``run``).
- **Axis.** Ticks at a round interval (1, 2 or 5 × a power of ten ms; then 1, 2, 5, 10,
  15, 30 s; minutes; hours), labelled with the time since the run was created.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

WIDTH = 960  # the chart's drawing width in SVG units (the label column is beside it)
LABEL = 150
LANE_H = 26
BAR_H = 16
AXIS_H = 24
_ROUND = (1, 2, 5, 10, 20, 50, 100, 200, 500,
          1000, 2000, 5000, 10_000, 15_000, 30_000,
          60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
          3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000)
_UNITS = ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1000, "s"), (1, "ms"))


def iso_ms(text: str | None) -> int | None:
    if not text:
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def duration_text(ms: int) -> str:
    """``ms`` in the largest unit that keeps it at least 1 (``1.5s``, ``2min``, ``340ms``)."""
    for size, unit in _UNITS:
        if ms >= size or size == 1:
            value = ms / size
            return f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
    return f"{ms}ms"  # pragma: no cover - the loop always returns


def tick_interval(span_ms: int, *, target: int = 8) -> int:
    """A round interval giving at most about ``target`` ticks over ``span_ms``: 1, 2 or 5 ×
    a power of ten milliseconds below a second, then round seconds, minutes, hours, days."""
    raw = max(1, span_ms // target)
    for nice in _ROUND:
        if nice >= raw:
            return nice
    days = 86_400_000
    return -(-raw // days) * days


def _lane_of(lanes_end: list[int], start: int, end: int) -> int:
    for i, free_at in enumerate(lanes_end):
        if free_at <= start:
            lanes_end[i] = end
            return i
    lanes_end.append(end)
    return len(lanes_end) - 1


def gantt(run: dict[str, Any], steps: list[dict[str, Any]], *, now: int,
          waits: dict[str, str] | None = None, wakes: dict[str, int] | None = None) -> dict[str, Any]:
    """The chart of ``run`` (a run dict with ISO times) and its ``steps`` (step dicts, in
    execution order). ``waits`` names the event each step waited or waits for, ``wakes``
    when each pending step (asleep, backing off, waiting) is due. Returns
    ``{width, height, label_width, lanes: [{y, label}], bars: [{kind, x, w, y, h, label,
    title, step}], ticks: [{x, label}]}`` with x in SVG units."""
    waits, wakes = waits or {}, wakes or {}
    created = iso_ms(run.get("created_at")) or now
    run_start = iso_ms(run.get("started_at"))
    run_end = iso_ms(run.get("ended_at"))
    spans = []
    for step in steps:
        start = iso_ms(step.get("started_at"))
        if start is None:
            continue
        end = iso_ms(step.get("ended_at"))
        wake = wakes.get(step["key"])
        pending_end = end if end is not None else max(now, wake or now)
        spans.append((start, max(start, pending_end), end, wake, step))
    t1 = max([run_end or now, *[s[1] for s in spans]] + [created + 1])
    total = max(1, t1 - created)

    def x(ms: int) -> float:
        return round(LABEL + (ms - created) * WIDTH / total, 1)

    def w(a: int, b: int) -> float:
        return round(max(1.5, (b - a) * WIDTH / total), 1)

    bars: list[dict[str, Any]] = []
    run_y = AXIS_H
    if run_start is not None and run_start > created:
        bars.append(_bar("queue", x(created), w(created, run_start), run_y,
                         f"queued {duration_text(run_start - created)}",
                         f"run queued {duration_text(run_start - created)} before it started"))
    if run_start is not None:
        until = run_end or now
        bars.append(_bar("run", x(run_start), w(run_start, until), run_y, run.get("status", ""),
                         f"run {run.get('status')}: {duration_text(max(0, until - run_start))}"))
    lanes_end: list[int] = []
    placed = []
    for start, span_end, end, wake, step in sorted(spans, key=lambda s: (s[0], s[1])):
        lane = _lane_of(lanes_end, start, span_end)
        placed.append((lane, start, span_end, end, wake, step))
    lane_last: dict[int, int] = {}
    for lane, start, span_end, end, wake, step in placed:
        y = AXIS_H + LANE_H * (lane + 1)
        ready = lane_last.get(lane, run_start if run_start is not None else created)
        lane_last[lane] = span_end
        key, kind = step["key"], step["kind"]
        if kind == "run" and start > ready:
            bars.append(_bar("queue", x(ready), w(ready, start), y, "",
                             f"{key}: queue delay {duration_text(start - ready)}", key))
        if kind == "run":
            bars += _attempt_bars(step, start, span_end, y, wake, x, w)
        else:
            what = {"sleep": "sleep", "wait": "wait for " + waits.get(key, "event"),
                    "invoke": "invoke"}.get(kind, kind)
            state = "" if end is not None else f" until {_clock(wake)}"
            bars.append(_bar("gap", x(start), w(start, span_end), y,
                             f"{key}: {what}{state}",
                             f"{key}: {what} {duration_text(span_end - start)}"
                             + (f" (until {_clock(wake)})" if end is None and wake else ""), key))
    interval = tick_interval(total)
    ticks = [{"x": x(created + t), "label": "0" if t == 0 else "+" + duration_text(t)}
             for t in range(0, total + 1, interval)][:40]
    lanes = [{"y": AXIS_H, "label": "run"}] + [
        {"y": AXIS_H + LANE_H * (i + 1), "label": f"lane {i + 1}" if len(lanes_end) > 1 else "steps"}
        for i in range(len(lanes_end))]
    return {"width": LABEL + WIDTH + 10, "height": AXIS_H + LANE_H * (len(lanes_end) + 1) + 4,
            "label_width": LABEL, "lanes": lanes, "bars": bars, "ticks": ticks,
            "bar_h": BAR_H, "lane_h": LANE_H, "axis_h": AXIS_H,
            "span": duration_text(total)}


def _attempt_bars(step: dict[str, Any], start: int, span_end: int, y: int, wake: int | None,
                  x: Callable[[int], float],
                  w: Callable[[int, int], float]) -> list[dict[str, Any]]:
    """A ``run`` step's bars: one per failed attempt its log holds (``attempts_log``), each
    followed by its backoff up to the next attempt, then the last attempt (the step row's)."""
    key, status = step["key"], step["status"]
    attempts = step.get("attempts") or 0
    log = [(a["attempt"], iso_ms(a.get("started_at")), iso_ms(a.get("ended_at")),
            iso_ms(a.get("retry_at")), a.get("error") or {})
           for a in step.get("attempts_log") or []]
    final = log.pop() if status == "failed" and log and log[-1][0] == attempts else None
    # an attempt with no start (an SDK's over HTTP) is drawn at its end; one that died, not
    drawn = [(n, b if a is None else a, b, r, e) for n, a, b, r, e in log if b is not None]
    bars: list[dict[str, Any]] = []
    if not drawn and status == "retrying":  # no log (a row from before it): one backoff
        return [_bar("backoff", x(start), w(start, span_end), y,
                     f"{key}: attempt {attempts} failed, retry at {_clock(wake)}",
                     f"{key}: {attempts} attempt(s) failed since {_clock(start)}; "
                     f"next attempt at {_clock(wake)}", key)]
    if final is not None and final[1] is not None:
        last_start = final[1]
    elif drawn:
        last_end, retry_at = drawn[-1][2], drawn[-1][3]
        last_start = min(span_end, max(last_end, retry_at or last_end))
    else:
        last_start = start
    for i, (n, a, b, retry_at, error) in enumerate(drawn):
        why = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        bars.append(_bar("exec failed", x(a), w(a, b), y, f"{key} #{n}",
                         f"{key}: attempt {n} failed after {duration_text(max(0, b - a))}: "
                         f"{why}", key))
        nxt = (drawn[i + 1][1] if i + 1 < len(drawn)
               else span_end if status == "retrying" else last_start)
        if nxt is not None and nxt > b:
            bars.append(_bar("backoff", x(b), w(b, nxt), y, "",
                             f"{key}: backoff {duration_text(nxt - b)} after attempt {n}; "
                             f"next attempt at {_clock(retry_at or nxt)}", key))
    if status == "retrying":
        return bars
    if drawn or final is not None:
        label = key if attempts <= 1 else f"{key} #{attempts}"
        note = f", attempt {attempts}" if attempts > 1 else ""
    else:  # no log: the step row's first start to last end
        label = key if attempts <= 1 else f"{key} ×{attempts} attempts"
        note = f", {attempts} attempts (first start to last end)" if attempts > 1 else ""
    bars.append(_bar("exec" + (" failed" if status == "failed" else ""), x(last_start),
                     w(last_start, span_end), y, label,
                     f"{key}: {status}, {duration_text(max(0, span_end - last_start))}{note}",
                     key))
    return bars


def _clock(ms: int | None) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%H:%M:%S") + " UTC"


def _bar(kind: str, x: float, w: float, y: int, label: str, title: str,
         step: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "x": x, "w": w, "y": y + (LANE_H - BAR_H) // 2, "h": BAR_H,
            "label": label, "title": title, "step": step}


__all__ = ["gantt", "tick_interval", "duration_text", "iso_ms"]
