"""Performance summaries: rolled up from finished runs, read by the dashboard.

**Why a roll-up and not a write in the transaction that ends a run.** Ending a run on
PostgreSQL is one statement on the hot path (``complete``: the output and the last step);
adding an upsert of a per-function summary row there would make every run of a function
that ends in the same 5 minutes queue on one row lock, and add a statement per run. The
scheduler instead rolls up, every :data:`ROLLUP_INTERVAL_MS`, the runs that *ended* since
its watermark (on the partial index on ``tj_runs.ended_at`` from m0009) and the runs
*created* since its other watermark (the ``created_at`` index): a few range reads a minute
however many runs end, and the hot path writes nothing more.

What is counted (see migration 0013 for the tables): per function and hour (``span``
3600000), and per 5-minute bucket for the last :data:`FINE_KEEP_MS` (``span`` 300000: the
1-hour window's bars): runs ``started`` (created: triggered or scheduled) in it, and ``completed`` / ``failed`` /
``cancelled`` in the bucket they ended in, with the histograms of run duration (first
start to end), queue delay (from when the run was due — its event's ``ts`` or its
creation, the later — to its first start) and the duration of its ``step.run`` steps; per
hour, each step name's count, failures and histogram (the slowest steps), and each error's
count with its latest run (top errors grouped by message).

**Watermarks** (``tj_maintenance`` row ``stats``): a pass reads the runs that ended in
``(ended watermark, now - SETTLE_MS]`` (about :data:`PASS_RUNS` of them, then the next
pass), adds them to the summary rows with ``n = n + EXCLUDED.n`` upserts and moves the
watermarks, in one transaction that first locks the watermark row: two schedulers never
count a run twice. A run whose end commits more than :data:`SETTLE_MS` after the time it
records is not counted (its end is older than the watermark by then). Summary rows older than
:data:`KEEP_MS` are deleted by the pass.

**Reads** (:meth:`StatsStore.series`, :meth:`StatsStore.slowest_steps`,
:meth:`StatsStore.top_errors`) sum the summary rows of a window (1 h, 24 h, 7 d) on their
primary key (span, bucket, …): at most 168 rows per function for 7 days, never the runs
table. Percentiles are estimated from the histogram (linear inside a
bucket; the open last bucket reports its lower bound).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Iterable, cast

from .dialect import Dialect
from .schema import (EVENTS, MAINTENANCE, RUNS, STATS, STATS_BOUNDS_MS, STATS_ERRORS, STATS_STEPS,
                     STEPS, hist_columns)

BUCKET_MS = 300_000  # tj_stats
HOUR_MS = 3_600_000  # tj_stats_steps, tj_stats_errors
SETTLE_MS = 10_000  # a run's end is counted once it is this old
PASS_RUNS = 20_000  # ended runs one pass reads (about; the rest in the next pass)
MAX_PASSES = 200  # per roll_up call (the rest on the next)
KEEP_MS = 8 * 24 * HOUR_MS  # hourly rows (7-day window + a day)
FINE_KEEP_MS = 2 * HOUR_MS  # 5-minute rows: only the 1-hour window reads them
BACKFILL_MS = 7 * 24 * HOUR_MS  # the first pass starts this far back (or at the first run)
MAX_STEP_NAMES = 100  # distinct step names per function and pass; the rest are "(other steps)"
MAX_ERRORS = 50  # distinct messages per function and pass; the rest "(other errors)"
MESSAGE_CHARS = 200
WATERMARK = "stats"
ROLLUP_INTERVAL_MS = 60_000

WINDOWS = {  # window name: (length, interval of one bar, summary rows read: their span)
    "1h": (HOUR_MS, BUCKET_MS, BUCKET_MS),
    "24h": (24 * HOUR_MS, HOUR_MS, HOUR_MS),
    "7d": (7 * 24 * HOUR_MS, 6 * HOUR_MS, HOUR_MS),
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

    def merge(self, other: "_Acc") -> None:
        for key, n in other.counts.items():
            self.counts[key] += n
        for prefix, hist in other.hists.items():
            self.hists[prefix] = [a + b for a, b in zip(self.hists[prefix], hist)]
            self.sums[prefix] += other.sums[prefix]

    def add_histogram(self, prefix: str, n: int, total: int, counts: list[int]) -> None:
        if n:
            self.hists[prefix] = [a + b for a, b in zip(self.hists[prefix], counts)]
            self.sums[prefix] += total


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


@functools.lru_cache(maxsize=None)
def _upsert(table: str, keys: tuple[str, ...], columns: tuple[str, ...],
            replace: tuple[str, ...] = ()) -> str:
    """An upsert of one row adding ``columns`` to the stored ones and replacing ``replace``."""
    names = ", ".join(f'"{c}"' for c in keys + columns + replace)
    one = "(" + ", ".join("?" for _ in keys + columns + replace) + ")"
    sets = [f'"{c}" = "{table}"."{c}" + EXCLUDED."{c}"' for c in columns]
    sets += [f'"{c}" = EXCLUDED."{c}"' for c in replace]
    return (f'INSERT INTO "{table}" ({names}) VALUES {one} ON CONFLICT '
            f'({", ".join(chr(34) + k + chr(34) for k in keys)}) DO UPDATE SET {", ".join(sets)}')


_STATS_UPSERT = (STATS, ("span", "bucket", "function_id"), _STATS_COLUMNS)
_STEPS_UPSERT = (STATS_STEPS, ("bucket", "function_id", "step"), _STEP_COLUMNS)
_ERRORS_UPSERT = (STATS_ERRORS, ("bucket", "function_id", "message"), ("n",),
                  ("name", "last_run_id", "last_at"))


NTH_ENDED = (f'SELECT "ended_at" FROM "{RUNS}" WHERE "ended_at" > ? AND "ended_at" <= ? '
             'ORDER BY "ended_at" LIMIT 1 OFFSET ?')
def _histogram_sql(value: str) -> str:
    """SQL summing, over a group, ``value``'s count, total (negative as 0) and cumulative
    count under each bound (``NULL`` values not counted)."""
    clipped = f"CASE WHEN {value} < 0 THEN 0 ELSE {value} END"
    cumulative = ", ".join(f"SUM(CASE WHEN {value} <= {b} THEN 1 ELSE 0 END)"
                           for b in STATS_BOUNDS_MS)
    return (f"SUM(CASE WHEN {value} IS NULL THEN 0 ELSE 1 END), "
            f"COALESCE(SUM({clipped}), 0), {cumulative}")


def _from_cumulative(n: int, cumulative: list[int]) -> list[int]:
    """The buckets' counts from the cumulative counts under each bound (and the total)."""
    edges = [0, *cumulative, n]
    return [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]


_DURATION = ('CASE WHEN r."status" IN (\'completed\', \'failed\') '
             'THEN r."ended_at" - r."started_at" END')
_QUEUE = ('r."started_at" - CASE WHEN e."ts" > r."created_at" THEN e."ts" '
          'ELSE r."created_at" END')
_RUN_BUCKET = f'r."ended_at" / {BUCKET_MS} * {BUCKET_MS}'
ENDED_RUNS = (f'SELECT r."function_id", {_RUN_BUCKET}, count(*), '
              'SUM(CASE WHEN r."status" = \'completed\' THEN 1 ELSE 0 END), '
              'SUM(CASE WHEN r."status" = \'failed\' THEN 1 ELSE 0 END), '
              'SUM(CASE WHEN r."status" = \'cancelled\' THEN 1 ELSE 0 END), '
              f'{_histogram_sql(_DURATION)}, {_histogram_sql(_QUEUE)} '
              f'FROM "{RUNS}" r LEFT JOIN "{EVENTS}" e ON e."id" = r."event_id" '
              'WHERE r."ended_at" > ? AND r."ended_at" <= ? GROUP BY 1, 2')
FAILED_RUNS = (f'SELECT "id", "function_id", "ended_at", "error" FROM "{RUNS}" '
               'WHERE "ended_at" > ? AND "ended_at" <= ? AND "status" = \'failed\'')
_STEP_MS = 's."ended_at" - s."started_at"'
ENDED_STEPS = (f'SELECT r."function_id", {_RUN_BUCKET}, s."name", '
               'SUM(CASE WHEN s."status" = \'failed\' THEN 1 ELSE 0 END), '
               f'{_histogram_sql(_STEP_MS)} FROM "{RUNS}" r JOIN "{STEPS}" s ON s."run_id" = r."id" '
               'WHERE r."ended_at" > ? AND r."ended_at" <= ? AND s."kind" = \'run\' '
               'AND s."started_at" IS NOT NULL AND s."ended_at" IS NOT NULL GROUP BY 1, 2, 3')
CREATED_RUNS = (f'SELECT "function_id", "created_at" / {BUCKET_MS} * {BUCKET_MS}, count(*) '
                f'FROM "{RUNS}" WHERE "created_at" > ? AND "created_at" <= ? '
                'GROUP BY 1, 2')


class StatsStore:
    """The roll-up and the reads of the module docstring, on one database."""

    def __init__(self, dialect: Dialect):
        self.d = dialect
        self._fine_from = 0

    # -- the roll-up ----------------------------------------------------------------------------
    def roll_up(self, now: int) -> dict[str, Any]:
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

    def _lock_watermarks(self, now: int) -> dict[str, Any]:
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
        return cast("dict[str, Any]", json.loads(row[0]))

    def _pass(self, now: int) -> tuple[int, int, bool]:
        upto_limit = now - SETTLE_MS
        with self.d.db.atomic():
            marks = self._lock_watermarks(now)
            ended_from = int(marks["ended"])
            ended_to = upto_limit
            nth = self.d.execute(NTH_ENDED, (ended_from, upto_limit, PASS_RUNS)).fetchone()
            if nth is not None:  # more than a pass's worth: stop before the run after them
                ended_to = max(int(nth[0]) - 1, ended_from + 1)
            created_from = int(marks.get("created", ended_from))
            created_to = max(created_from, upto_limit)
            if ended_to <= ended_from and created_to <= created_from:
                return 0, ended_from, True
            rows: dict[tuple[int, str], _Acc] = {}
            self._fine_from = now - FINE_KEEP_MS

            def acc(bucket: int, fn_id: str) -> _Acc:
                row = rows.get((bucket, fn_id))
                if row is None:
                    row = rows[(bucket, fn_id)] = _Acc()
                return row

            errors: dict[tuple[int, str, str], list[Any]] = {}
            steps: dict[tuple[int, str, str], list[Any]] = {}
            runs = 0
            if ended_to > ended_from:
                width = 2 + len(STATS_BOUNDS_MS)
                for record in self.d.execute(ENDED_RUNS, (ended_from, ended_to)):
                    fn_id, bucket, n, completed, failed, cancelled = record[:6]
                    runs += int(n)
                    row = acc(int(bucket), fn_id)
                    row.counts["completed"] += int(completed)
                    row.counts["failed"] += int(failed)
                    row.counts["cancelled"] += int(cancelled)
                    for prefix, at in (("d", 6), ("q", 6 + width)):
                        row.add_histogram(prefix, *self._histogram(record[at:at + width]))
                for run_id, fn_id, ended, error in self.d.execute(FAILED_RUNS,
                                                                  (ended_from, ended_to)):
                    self._count_error(errors, fn_id, int(ended), run_id, error)
                steps = self._steps(ended_from, ended_to, acc)
            for fn_id, bucket, n in self.d.execute(CREATED_RUNS, (created_from, created_to)):
                acc(int(bucket), fn_id).counts["started"] += int(n)
            self._write(rows, steps, errors)
            marks = {"ended": max(ended_from, ended_to), "created": created_to}
            self.d.execute(f'UPDATE "{MAINTENANCE}" SET "ran_at" = ?, "detail" = ? '
                           'WHERE "name" = ?', (now, json.dumps(marks), WATERMARK))
            for span, keep in ((BUCKET_MS, FINE_KEEP_MS), (HOUR_MS, KEEP_MS)):
                self.d.execute(f'DELETE FROM "{STATS}" WHERE "span" = ? AND "bucket" < ?',
                               (span, now - keep))
            for table in (STATS_STEPS, STATS_ERRORS):
                self.d.execute(f'DELETE FROM "{table}" WHERE "bucket" < ?', (now - KEEP_MS,))
        return runs, marks["ended"], marks["ended"] >= upto_limit

    @staticmethod
    def _histogram(values: Iterable[Any]) -> tuple[int, int, list[int]]:
        """(count, total ms, bucket counts) from a row of :func:`_histogram_sql`'s columns."""
        n, total, *cumulative = (int(v or 0) for v in values)
        return n, total, _from_cumulative(n, cumulative)

    def _steps(self, ended_from: int, ended_to: int,
               acc: Callable[[int, str], _Acc]) -> dict[tuple[int, str, str], list[Any]]:
        """The step histograms of the runs ended in the range, per 5-minute bucket (into
        ``acc``) and per hour and step name (returned)."""
        steps: dict[tuple[int, str, str], list[Any]] = {}
        names: dict[str, set[Any]] = {}
        for fn_id, bucket, name, failed, *hist in self.d.execute(ENDED_STEPS,
                                                                  (ended_from, ended_to)):
            n, total, counts = self._histogram(hist)
            acc(int(bucket), fn_id).add_histogram("s", n, total, counts)
            seen = names.setdefault(fn_id, set())
            if name not in seen and len(seen) >= MAX_STEP_NAMES:
                name = "(other steps)"
            seen.add(name)
            row = steps.setdefault((_floor(int(bucket), HOUR_MS), fn_id, name[:256]),
                                   [0, 0, 0, [0] * _N])
            row[0] += n
            row[1] += int(failed or 0)
            row[2] += total
            row[3] = [a + b for a, b in zip(row[3], counts)]
        return steps

    @staticmethod
    def _count_error(errors: dict[tuple[int, str, str], list[Any]], fn_id: str, ended: int,
                     run_id: str, error: Any) -> None:
        """Count a failed run under its message (the first :data:`MAX_ERRORS` messages of a
        function and hour in a pass; "(other errors)" after them)."""
        name, message = _error_parts(error)
        hour = _floor(ended, HOUR_MS)
        if (hour, fn_id, message) not in errors and sum(
                1 for key in errors if key[:2] == (hour, fn_id)) >= MAX_ERRORS:
            name, message = "Error", "(other errors)"
        row = errors.setdefault((hour, fn_id, message), [name, 0, run_id, ended])
        row[1] += 1
        if ended >= row[3]:
            row[0], row[2], row[3] = name, run_id, ended

    def _write(self, rows: dict[tuple[int, str], _Acc],
               steps: dict[tuple[int, str, str], list[Any]],
               errors: dict[tuple[int, str, str], list[Any]]) -> None:
        hourly: dict[tuple[int, str], _Acc] = {}
        for (bucket, fn_id), a in rows.items():
            hourly.setdefault((_floor(bucket, HOUR_MS), fn_id), _Acc()).merge(a)
        fine = {key: a for key, a in rows.items() if key[0] >= self._fine_from}
        self._upsert(_STATS_UPSERT, [
            (span, bucket, fn_id, *a.counts.values(),
             sum(a.hists["d"]), a.sums["d"], sum(a.hists["q"]), a.sums["q"],
             sum(a.hists["s"]), a.sums["s"], *a.hists["d"], *a.hists["q"], *a.hists["s"])
            for span, table in ((BUCKET_MS, fine), (HOUR_MS, hourly))
            for (bucket, fn_id), a in sorted(table.items())])
        self._upsert(_STEPS_UPSERT, [
            (bucket, fn_id, name, n, failed, total, *hist)
            for (bucket, fn_id, name), (n, failed, total, hist) in sorted(steps.items())])
        self._upsert(_ERRORS_UPSERT, [
            (bucket, fn_id, message, row[1], row[0], row[2], row[3])
            for (bucket, fn_id, message), row in sorted(errors.items())])

    def _upsert(self, target: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """``rows`` (sorted: a fixed lock order), one pipelined statement each: the same
        upsert text every time (one prepared statement), however many rows a pass has."""
        self.d.executemany(_upsert(*target), rows)

    def watermark(self) -> tuple[int, dict[str, Any]] | None:
        """When the last pass ran and its watermarks, or ``None`` before the first."""
        row = self.d.execute(f'SELECT "ran_at", "detail" FROM "{MAINTENANCE}" WHERE "name" = ?',
                             (WATERMARK,)).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    # -- reads ------------------------------------------------------------------------------------
    def series(self, *, window: str, now: int,
               function_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """One window of a function (``function_ids`` one id), several, or the whole system
        (``None``): ``{"window", "interval_ms", "points": [{"at", "started", "completed",
        "failed", "cancelled"}, …] (oldest first, every interval present), "totals": {…},
        "duration"/"queue"/"step": {"n", "mean", "p50", "p95", "p99"}}``."""
        length, interval, span = WINDOWS[window]
        end = _floor(now, span) + span
        start = end - length
        where, params = self._scope(start, function_ids, span=span)
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

    @staticmethod
    def _scope(start: int, function_ids: Iterable[str] | None, *,
               span: int | None = None) -> tuple[str, tuple[Any, ...]]:
        where, params = ('"span" = ? AND "bucket" >= ?', (span, start)) if span else \
            ('"bucket" >= ?', (start,))
        if function_ids is None:
            return where, params
        ids = tuple(function_ids)
        if not ids:
            return where + " AND 1 = 0", params
        marks = ", ".join("?" for _ in ids)
        return f'{where} AND "function_id" IN ({marks})', (*params, *ids)

    def per_function(self, *, window: str, now: int) -> dict[str, dict[str, Any]]:
        """Per function over a window: counts, success rate and duration p50/p95/p99 (the
        functions and performance pages' tables), from one grouped read."""
        length, _, span = WINDOWS[window]
        start = _floor(now, span) + span - length
        hist = ", ".join(f'SUM("{c}")' for c in _HIST_COLUMNS["d"])
        out = {}
        for row in self.d.execute(
                f'SELECT "function_id", SUM("started"), SUM("completed"), SUM("failed"), '
                f'SUM("cancelled"), {hist} FROM "{STATS}" WHERE "span" = ? AND "bucket" >= ? '
                'GROUP BY "function_id"', (span, start)):
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
                      limit: int = 10) -> list[dict[str, Any]]:
        """The steps with the highest p95 duration in the window: ``{function_id, step, n,
        failed, mean, p50, p95, p99}``."""
        length = WINDOWS[window][0]
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
                   limit: int = 10) -> list[dict[str, Any]]:
        """The most frequent errors in the window, grouped by message: ``{function_id, name,
        message, n, last_run_id, last_at}``."""
        length = WINDOWS[window][0]
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
