"""Benchmark: the dashboard's performance page and the roll-up behind it (issue 19, "read from
maintained summaries, not whole-table scans").

A fresh PostgreSQL database gets N finished runs (``--runs``, default 1,000,000) spread evenly
over the last 7 days across 10 functions, each with ``--steps`` step rows (default 5), 5 % of
them failed with one of 20 messages — written with ``INSERT … SELECT generate_series`` in the
engine's own schema. Then, in one invocation:

* ``backfill``: the first roll-up (reads the whole week once, pass by pass);
* ``minute``: one steady-state roll-up of about a minute of ended runs (``--per-minute``,
  default 6,000: 100 runs/s, each with its steps) added after the backfill;
* ``page 7d`` / ``page 24h`` / ``page fn 7d``: server time of ``GET /performance`` (Flask's
  test client, whole request: auth, reads, template), median and p90 of ``--repeat``;
* ``naive 7d``: what the page would cost without summaries — the p50/p95/p99 of the week's run
  durations with ``percentile_cont`` over ``tj_runs`` (``ended_at`` index range), for the ratio.

Run: ``python bench/dash_stats.py`` (``--runs 200000`` for a quicker look).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

DAY = 86_400_000
FUNCTIONS = 10


def _fill(conn, *, runs: int, steps: int, now: int, first: int = 0, span: int = 7 * DAY) -> None:
    """``runs`` finished runs ending evenly in ``(now - span, now]`` (ids ``b<first + g>``)."""
    conn.execute(f"""
        INSERT INTO tj_runs (id, app_id, function_id, event_id, status, output, error, attempt,
                             created_at, started_at, ended_at, wake_at, inflight)
        SELECT 'b' || lpad((g + {first})::text, 12, '0'), 'bench', 'fn-' || (g % {FUNCTIONS}),
               NULL, CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END, '{{}}',
               CASE WHEN g % 20 = 0 THEN '{{"name": "GatewayError", "message": "declined '
                    || (g % 400 / 20) || '"}}' END, 0,
               e - 40 - (g % 97) * 25, e - 30 - (g % 97) * 20, e, e - 40 - (g % 97) * 25, 0
        FROM (SELECT g, {now} - {span} + (g::bigint * {span} / {runs}) + 1 AS e
              FROM generate_series(1, {runs}) g) s""")
    if steps:
        conn.execute(f"""
            INSERT INTO tj_steps (run_id, key, name, kind, position, status, attempts, output,
                                  started_at, ended_at)
            SELECT r.id, 'step-' || k, 'step-' || k, 'run', k, 'completed', 1, '1',
                   r.started_at + (k - 1) * 3, r.started_at + (k - 1) * 3 + 2 + k * (r.ended_at % 7)
            FROM tj_runs r CROSS JOIN generate_series(1, {steps}) k
            WHERE r.id >= 'b' || lpad(({first} + 1)::text, 12, '0')
              AND r.id <= 'b' || lpad(({first} + {runs})::text, 12, '0')""")
    conn.execute("ANALYZE tj_runs")
    conn.execute("ANALYZE tj_steps")


def _timed(call, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--per-minute", type=int, default=6_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import psycopg

    from tengo_jobs.process.web import create_app
    from tengo_jobs.testing import make_test_runtime

    with H.postgres_url() as url:
        runtime = make_test_runtime(url, dashboard_password="bench-pass")
        now = runtime.clock.now()
        conn = psycopg.connect(url, autocommit=True)
        t0 = time.perf_counter()
        _fill(conn, runs=args.runs, steps=args.steps, now=now - 20_000)
        print(f"filled {args.runs:,} runs, {args.runs * args.steps:,} steps in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        stats = runtime.store.stats

        t0 = time.perf_counter()
        done = stats.roll_up(now)
        print(f"backfill: {done['runs']:,} runs in {done['passes']} passes, "
              f"{(time.perf_counter() - t0):.1f} s", flush=True)

        later = now + 60_000
        # ended after the backfill's watermark (now - 10 s) and settled by ``later``
        _fill(conn, runs=args.per_minute, steps=args.steps, now=later - 11_000,
              first=args.runs, span=58_000)
        t0 = time.perf_counter()
        done = stats.roll_up(later)
        print(f"minute: {done['runs']:,} runs in {done['passes']} pass(es), "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
        runtime.clock.set(later)

        client = create_app(runtime).test_client()
        auth = {"Authorization": "Bearer bench-pass"}

        def page(path):
            def call():
                answer = client.get(path, headers=auth)
                assert answer.status_code == 200, answer.status_code
            return call

        for label, path in (("page 7d", "/performance?window=7d"),
                            ("page 24h", "/performance?window=24h"),
                            ("page 1h", "/performance?window=1h"),
                            ("page fn 7d", "/performance?window=7d&function=fn-3"),
                            ("functions", "/functions")):
            p50, p90 = _timed(page(path), args.repeat)
            print(f"{label}: median {p50:.1f} ms, p90 {p90:.1f} ms", flush=True)

        def naive():
            conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY "
                "ended_at - started_at), count(*) FROM tj_runs WHERE ended_at > %s "
                "AND status IN ('completed', 'failed')", (later - 7 * DAY,)).fetchone()
        p50, p90 = _timed(naive, max(3, args.repeat // 4))
        print(f"naive 7d percentiles over tj_runs: median {p50:.1f} ms, p90 {p90:.1f} ms",
              flush=True)
        conn.close()
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
