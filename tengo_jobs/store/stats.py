"""Performance summaries: rolled up from finished runs, read by the dashboard.

**Why a roll-up and not a write in the transaction that ends a run.** Ending a run on
PostgreSQL is one statement on the hot path (``complete``: the output and the last step);
adding an upsert of a per-function summary row there would make every run of a function
that ends in the same 5 minutes queue on one row lock, and add a statement per run. The
scheduler instead rolls up, every :data:`ROLLUP_INTERVAL_MS`, the runs that *ended* since
its watermark (on the partial index on ``tj_runs.ended_at`` from m0009) and the runs
*created* since its other watermark (the ``created_at`` index): a few range reads a minute
however many runs end, and the hot path writes nothing more.

What is counted (see migration 0013 for the tables): per function and 5-minute bucket,
runs ``started`` (created: triggered or scheduled) in it, and ``completed`` / ``failed`` /
``cancelled`` in the bucket they ended in, with the histograms of run duration (first
start to end), queue delay (from when the run was due — its event's ``ts`` or its
creation, the later — to its first start) and the duration of its ``step.run`` steps; per
hour, each step name's count, failures and histogram (the slowest steps), and each error's
count with its latest run (top errors grouped by message).

**Watermarks** (``tj_maintenance`` row ``stats``): a pass reads the runs that ended in
``(ended watermark, now - SETTLE_MS]`` (at most :data:`PASS_SPAN_MS` of them, then the next
pass), adds them to the summary rows with ``n = n + EXCLUDED.n`` upserts and moves the
watermarks, in one transaction that first locks the watermark row: two schedulers never
count a run twice. A run whose end commits more than :data:`SETTLE_MS` after the time it
records is not counted (its end is older than the watermark by then). Summary rows older than
:data:`KEEP_MS` are deleted by the pass.

**Reads** (:meth:`StatsStore.series`, :meth:`StatsStore.slowest_steps`,
:meth:`StatsStore.top_errors`) sum the summary rows of a window (1 h, 24 h, 7 d) on their
primary key, whose first column is the bucket: at most 2,016 rows per function for 7 days,
never the runs table. Percentiles are estimated from the histogram (linear inside a
bucket; the open last bucket reports its lower bound).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from .dialect import Dialect
from .schema import (EVENTS, MAINTENANCE, RUNS, STATS, STATS_BOUNDS_MS, STATS_ERRORS, STATS_STEPS,
                     STEPS, hist_columns)

BUCKET_MS = 300_000  # tj_stats
HOUR_MS = 3_600_000  # tj_stats_steps, tj_stats_errors
SETTLE_MS = 10_000  # a run's end is counted once it is this old
PASS_SPAN_MS = 15 * 60_000  # ended time one pass reads at most
MAX_PASSES = 200  # per roll_up call (the rest on the next)
KEEP_MS = 8 * 24 * HOUR_MS
BACKFILL_MS = 7 * 24 * HOUR_MS  # the first pass starts this far back (or at the first run)
MAX_STEP_NAMES = 100  # distinct step names per function and pass; the rest are "(other steps)"
MAX_ERRORS = 50  # distinct messages per function and pass; the rest "(other errors)"
MESSAGE_CHARS = 200
WATERMARK = "stats"
ROLLUP_INTERVAL_MS = 60_000

WINDOWS = {  # window name: (length, interval of one bar)
    "1h": (HOUR_MS, BUCKET_MS),
    "24h": (24 * HOUR_MS, HOUR_MS),
    "7d": (7 * 24 * HOUR_MS, 6 * HOUR_MS),
}
HISTS = {"duration": "d", "queue": "q", "step": "s"}
_N = len(STATS_BOUNDS_MS) + 1


def _floor(ms: int, size: int) -> int:
    return ms - ms % size


def bucket_index(ms: int) -> int:
    """The histogram bucket of a duration: the first bound it does not exceed."""
    for i, bound in enumerate(STATS_BOUNDS_MS):
        if ms <= bound:
            return i
    return len(STATS_BOUNDS_MS)


def percentile(hist: list[int], q: float) -> int | None:
    """The ``q`` quantile (0..1) estimated from a histogram's counts, in ms (``None``: empty)."""
    total = sum(hist)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            low = STATS_BOUNDS_MS[i - 1] if i else 0
            if i == len(STATS_BOUNDS_MS):
                return low
            high = STATS_BOUNDS_MS[i]
            return int(low + (high - low) * max(0.0, rank - seen) / n)
        seen += n
    return STATS_BOUNDS_MS[-1]


class _Acc:
    """One summary row being built in a pass."""

    __slots__ = ("counts", "hists", "sums")

    def __init__(self) -> None:
        self.counts = {"started": 0, "completed": 0, "failed": 0, "cancelled": 0}
        self.hists = {p: [0] * _N for p in HISTS.values()}
        self.sums = {p: 0 for p in HISTS.values()}

    def add(self, prefix: str, ms: int) -> None:
        ms = max(0, int(ms))
        self.hists[prefix][bucket_index(ms)] += 1
        self.sums[prefix] += ms


def _error_parts(text: str | None) -> tuple[str, str]:
    try:
        error = json.loads(text) if text else {}
    except ValueError:
        error = {"message": text}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    name = str(error.get("name") or "Error")[:128]
    message = str(error.get("message") or "")[:MESSAGE_CHARS]
    return name, message


_HIST_COLUMNS = {p: hist_columns(p) for p in HISTS.values()}
_STATS_COLUMNS = ("started", "completed", "failed", "cancelled", "duration_n", "duration_sum",
                  "queue_n", "queue_sum", "step_n", "step_sum",
                  *_HIST_COLUMNS["d"], *_HIST_COLUMNS["q"], *_HIST_COLUMNS["s"])
_STEP_COLUMNS = ("n", "failed", "total_ms", *_HIST_COLUMNS["s"])


def _upsert(table: str, keys: tuple[str, ...], columns: tuple[str, ...],
            replace: tuple[str, ...] = ()) -> str:
    names = ", ".join(f'"{c}"' for c in keys + columns + replace)
    marks = ", ".join("?" for _ in keys + columns + replace)
    sets = [f'"{c}" = "{table}"."{c}" + EXCLUDED."{c}"' for c in columns]
    sets += [f'"{c}" = EXCLUDED."{c}"' for c in replace]
    return (f'INSERT INTO "{table}" ({names}) VALUES ({marks}) ON CONFLICT '
            f'({", ".join(chr(34) + k + chr(34) for k in keys)}) DO UPDATE SET {", ".join(sets)}')


UPSERT_STATS = _upsert(STATS, ("bucket", "function_id"), _STATS_COLUMNS)
UPSERT_STEPS = _upsert(STATS_STEPS, ("bucket", "function_id", "step"), _STEP_COLUMNS)
UPSERT_ERRORS = _upsert(STATS_ERRORS, ("bucket", "function_id", "message"), ("n",),
                        ("name", "last_run_id", "last_at"))
ENDED_RUNS = (f'SELECT r."id", r."function_id", r."status", r."created_at", r."started_at", '
              f'r."ended_at", CASE WHEN r."status" = \'failed\' THEN r."error" END, e."ts" '
              f'FROM "{RUNS}" r LEFT JOIN "{EVENTS}" e ON e."id" = r."event_id" '
              'WHERE r."ended_at" > ? AND r."ended_at" <= ? ORDER BY r."ended_at"')
ENDED_STEPS = (f'SELECT r."function_id", r."ended_at", s."name", s."status", s."started_at", '
               f's."ended_at" FROM "{RUNS}" r JOIN "{STEPS}" s ON s."run_id" = r."id" '
               'WHERE r."ended_at" > ? AND r."ended_at" <= ? AND s."kind" = \'run\' '
               'AND s."started_at" IS NOT NULL AND s."ended_at" IS NOT NULL')
CREATED_RUNS = (f'SELECT "function_id", "created_at" / {BUCKET_MS} * {BUCKET_MS}, count(*) '
                f'FROM "{RUNS}" WHERE "created_at" > ? AND "created_at" <= ? '
                'GROUP BY 1, 2')


class StatsStore:
    """The roll-up and the reads of the module docstring, on one database."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    # -- the roll-up ----------------------------------------------------------------------------
    def roll_up(self, now: int) -> dict:
        """Bring the summaries up to ``now - SETTLE_MS``, a pass (one transaction) at a time;
        returns ``{"runs": counted, "passes": n, "ended_upto": watermark}``."""
        counted = passes = 0
        mark: int | None = None
        while passes < MAX_PASSES:
            n, mark, done = self._pass(now)
            counted += n
            passes += 1
            if done:
                break
        return {"runs": counted, "passes": passes, "ended_upto": mark}

    def _lock_watermarks(self, now: int) -> dict:
        select = f'SELECT "detail" FROM "{MAINTENANCE}" WHERE "name" = ?{self.d.for_update}'
        row = self.d.execute(select, (WATERMARK,)).fetchone()
        if row is None:
            detail = {}
            for mark, column in (("ended", "ended_at"), ("created", "created_at")):
                first = self.d.execute(f'SELECT MIN("{column}") FROM "{RUNS}" '
                                       f'WHERE "{column}" > ?', (now - BACKFILL_MS,)).fetchone()[0]
                detail[mark] = (int(first) - 1) if first is not None else now - SETTLE_MS
            self.d.execute(f'INSERT INTO "{MAINTENANCE}" ("name", "ran_at", "detail") '
                           'VALUES (?, ?, ?) ON CONFLICT ("name") DO NOTHING',
                           (WATERMARK, now, json.dumps(detail)))
            row = self.d.execute(select, (WATERMARK,)).fetchone()
        return json.loads(row[0])

    def _pass(self, now: int) -> tuple[int, int, bool]:
        upto_limit = now - SETTLE_MS
        with self.d.db.atomic():
            marks = self._lock_watermarks(now)
            ended_from = int(marks["ended"])
            ended_to = min(upto_limit, ended_from + PASS_SPAN_MS)
            created_from = int(marks.get("created", ended_from))
            created_to = max(created_from, upto_limit)
            if ended_to <= ended_from and created_to <= created_from:
                return 0, ended_from, True
            rows: dict[tuple[int, str], _Acc] = {}

            def acc(bucket: int, fn_id: str) -> _Acc:
                return rows.setdefault((bucket, fn_id), _Acc())

            errors: dict[tuple[int, str, str], list] = {}
            runs = 0
            if ended_to > ended_from:
                for run_id, fn_id, status, created, started, ended, error, ts in self.d.execute(
                        ENDED_RUNS, (ended_from, ended_to)):
                    runs += 1
                    row = acc(_floor(int(ended), BUCKET_MS), fn_id)
                    status = getattr(status, "value", status)
                    if status in row.counts:
                        row.counts[status] += 1
                    if started is not None:
                        if status in ("completed", "failed"):
                            row.add("d", int(ended) - int(started))
                        due = max(int(created), int(ts) if ts is not None else 0)
                        row.add("q", int(started) - due)
                    if status == "failed":
                        self._count_error(errors, fn_id, int(ended), run_id, error)
                steps = self._steps(ended_from, ended_to, acc)
            else:
                steps = {}
            for fn_id, bucket, n in self.d.execute(CREATED_RUNS, (created_from, created_to)):
                acc(int(bucket), fn_id).counts["started"] += int(n)
            self._write(rows, steps, errors)
            marks = {"ended": max(ended_from, ended_to), "created": created_to}
            self.d.execute(f'UPDATE "{MAINTENANCE}" SET "ran_at" = ?, "detail" = ? '
                           'WHERE "name" = ?', (now, json.dumps(marks), WATERMARK))
            self.d.execute(f'DELETE FROM "{STATS}" WHERE "bucket" < ?', (now - KEEP_MS,))
            for table in (STATS_STEPS, STATS_ERRORS):
                self.d.execute(f'DELETE FROM "{table}" WHERE "bucket" < ?', (now - KEEP_MS,))
        return runs, marks["ended"], marks["ended"] >= upto_limit

    def _steps(self, ended_from: int, ended_to: int, acc) -> dict:
        steps: dict[tuple[int, str, str], list] = {}
        names: dict[str, set] = {}
        for fn_id, run_ended, name, status, started, ended in self.d.execute(
                ENDED_STEPS, (ended_from, ended_to)):
            ms = max(0, int(ended) - int(started))
            acc(_floor(int(run_ended), BUCKET_MS), fn_id).add("s", ms)
            seen = names.setdefault(fn_id, set())
            if name not in seen and len(seen) >= MAX_STEP_NAMES:
                name = "(other steps)"
            seen.add(name)
            row = steps.setdefault((_floor(int(run_ended), HOUR_MS), fn_id, name[:256]),
                                   [0, 0, 0, [0] * _N])
            row[0] += 1
            row[1] += 1 if getattr(status, "value", status) == "failed" else 0
            row[2] += ms
            row[3][bucket_index(ms)] += 1
        return steps

    @staticmethod
    def _count_error(errors: dict, fn_id: str, ended: int, run_id: str, error: Any) -> None:
        name, message = _error_parts(error)
        hour = _floor(ended, HOUR_MS)
        if (hour, fn_id, message) not in errors and sum(
                1 for k in errors if k[0] == hour and k[1] == fn_id) >= MAX_ERRORS:
            name, message = "Error", "(other errors)"
        row = errors.setdefault((hour, fn_id, message), [name, 0, run_id, ended])
        row[1] += 1
        if ended >= row[3]:
            row[0], row[2], row[3] = name, run_id, ended

    def _write(self, rows: dict, steps: dict, errors: dict) -> None:
        self.d.executemany(UPSERT_STATS, [
            (bucket, fn_id, *a.counts.values(),
             sum(a.hists["d"]), a.sums["d"], sum(a.hists["q"]), a.sums["q"],
             sum(a.hists["s"]), a.sums["s"], *a.hists["d"], *a.hists["q"], *a.hists["s"])
            for (bucket, fn_id), a in sorted(rows.items())])
        self.d.executemany(UPSERT_STEPS, [
            (bucket, fn_id, name, n, failed, total, *hist)
            for (bucket, fn_id, name), (n, failed, total, hist) in sorted(steps.items())])
        self.d.executemany(UPSERT_ERRORS, [
            (bucket, fn_id, message, n, name, run_id, at)
            for (bucket, fn_id, message), (name, n, run_id, at) in sorted(errors.items())])

    def watermark(self) -> tuple[int, dict] | None:
        """When the last pass ran and its watermarks, or ``None`` before the first."""
        row = self.d.execute(f'SELECT "ran_at", "detail" FROM "{MAINTENANCE}" WHERE "name" = ?',
                             (WATERMARK,)).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    # -- reads ------------------------------------------------------------------------------------
    def series(self, *, window: str, now: int, function_ids: Iterable[str] | None = None) -> dict:
        """One window of a function (``function_ids`` one id), several, or the whole system
        (``None``): ``{"window", "interval_ms", "points": [{"at", "started", "completed",
        "failed", "cancelled"}, …] (oldest first, every interval present), "totals": {…},
        "duration"/"queue"/"step": {"n", "mean", "p50", "p95", "p99"}}``."""
        length, interval = WINDOWS[window]
        end = _floor(now, BUCKET_MS) + BUCKET_MS
        start = end - length
        where, params = self._scope(start, function_ids)
        sums = ", ".join(f'SUM("{c}")' for c in _STATS_COLUMNS)
        rows = self.d.execute(
            f'SELECT ? + ("bucket" - ?) / ? * ?, {sums} FROM "{STATS}" WHERE {where} '
            'GROUP BY 1', (start, start, interval, interval, *params)).fetchall()
        by_at = {int(r[0]): [int(v or 0) for v in r[1:]] for r in rows}
        points, total = [], [0] * len(_STATS_COLUMNS)
        for at in range(start, end, interval):
            values = by_at.get(at, [0] * len(_STATS_COLUMNS))
            total = [a + b for a, b in zip(total, values)]
            points.append({"at": at, **dict(zip(("started", "completed", "failed",
                                                 "cancelled"), values[:4]))})
        named = dict(zip(_STATS_COLUMNS, total))
        body: dict[str, Any] = {"window": window, "interval_ms": interval, "start": start,
                                "end": end, "points": points,
                                "totals": {k: named[k] for k in ("started", "completed",
                                                                 "failed", "cancelled")}}
        for label, prefix in HISTS.items():
            hist = [named[c] for c in _HIST_COLUMNS[prefix]]
            n, total_ms = named[f"{label}_n"], named[f"{label}_sum"]
            body[label] = {"n": n, "mean": (total_ms // n) if n else None,
                           "p50": percentile(hist, 0.50), "p95": percentile(hist, 0.95),
                           "p99": percentile(hist, 0.99)}
        return body

    def _scope(self, start: int, function_ids: Iterable[str] | None) -> tuple[str, tuple]:
        if function_ids is None:
            return '"bucket" >= ?', (start,)
        ids = tuple(function_ids)
        if not ids:
            return '"bucket" >= ? AND 1 = 0', (start,)
        marks = ", ".join("?" for _ in ids)
        return f'"bucket" >= ? AND "function_id" IN ({marks})', (start, *ids)

    def per_function(self, *, window: str, now: int) -> dict[str, dict]:
        """Per function over a window: counts, success rate and duration p50/p95/p99 (the
        functions and performance pages' tables), from one grouped read."""
        length, _ = WINDOWS[window]
        start = _floor(now, BUCKET_MS) + BUCKET_MS - length
        hist = ", ".join(f'SUM("{c}")' for c in _HIST_COLUMNS["d"])
        out = {}
        for row in self.d.execute(
                f'SELECT "function_id", SUM("started"), SUM("completed"), SUM("failed"), '
                f'SUM("cancelled"), {hist} FROM "{STATS}" WHERE "bucket" >= ? '
                'GROUP BY "function_id"', (start,)):
            started, completed, failed, cancelled = (int(v or 0) for v in row[1:5])
            durations = [int(v or 0) for v in row[5:]]
            finished = completed + failed
            out[row[0]] = {"started": started, "completed": completed, "failed": failed,
                           "cancelled": cancelled,
                           "success_rate": (completed / finished) if finished else None,
                           "p50": percentile(durations, 0.50), "p95": percentile(durations, 0.95),
                           "p99": percentile(durations, 0.99)}
        return out

    def slowest_steps(self, *, window: str, now: int, function_ids: Iterable[str] | None = None,
                      limit: int = 10) -> list[dict]:
        """The steps with the highest p95 duration in the window: ``{function_id, step, n,
        failed, mean, p50, p95, p99}``."""
        length, _ = WINDOWS[window]
        start = _floor(now, HOUR_MS) + HOUR_MS - length
        where, params = self._scope(start, function_ids)
        hist = ", ".join(f'SUM("{c}")' for c in _HIST_COLUMNS["s"])
        out = []
        for row in self.d.execute(
                f'SELECT "function_id", "step", SUM("n"), SUM("failed"), SUM("total_ms"), {hist} '
                f'FROM "{STATS_STEPS}" WHERE {where} GROUP BY "function_id", "step"', params):
            fn_id, step, n, failed, total = row[0], row[1], int(row[2]), int(row[3]), int(row[4])
            counts = [int(v or 0) for v in row[5:]]
            out.append({"function_id": fn_id, "step": step, "n": n, "failed": failed,
                        "mean": total // n if n else None, "p50": percentile(counts, 0.5),
                        "p95": percentile(counts, 0.95), "p99": percentile(counts, 0.99)})
        out.sort(key=lambda s: (-(s["p95"] or 0), -(s["mean"] or 0), s["function_id"], s["step"]))
        return out[:limit]

    def top_errors(self, *, window: str, now: int, function_ids: Iterable[str] | None = None,
                   limit: int = 10) -> list[dict]:
        """The most frequent errors in the window, grouped by message: ``{function_id, name,
        message, n, last_run_id, last_at}``."""
        length, _ = WINDOWS[window]
        start = _floor(now, HOUR_MS) + HOUR_MS - length
        where, params = self._scope(start, function_ids)
        return [{"function_id": r[0], "message": r[1], "n": int(r[2]), "last_run_id": r[3],
                 "last_at": int(r[4]), "name": r[5]}
                for r in self.d.execute(
                    f'SELECT "function_id", "message", SUM("n"), MAX("last_run_id"), '
                    f'MAX("last_at"), MAX("name") FROM "{STATS_ERRORS}" WHERE {where} '
                    'GROUP BY "function_id", "message" ORDER BY SUM("n") DESC, MAX("last_at") '
                    'DESC LIMIT ?', (*params, limit))]


__all__ = ["StatsStore", "percentile", "bucket_index", "WINDOWS", "BUCKET_MS", "HOUR_MS",
           "SETTLE_MS", "ROLLUP_INTERVAL_MS"]
