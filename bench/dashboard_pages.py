"""Benchmark: the dashboard's runs page and run page at a million runs (issue 19).

A private PostgreSQL database (created here, dropped at the end) is filled on the database
itself with ``generate_series``: ``--runs`` runs (default 1,000,000) over ``--functions``
functions, each with its own event (``--names`` event names, data holding an order id and
a customer), five steps per run (5,000,000 step rows), statuses as a production table
holds them (mostly completed, some failed, a few cancelled, queued, sleeping, running).
Run and event ids are ULIDs of their creation time, as the engine makes them.

Then each page is requested ``--repeat`` times through Flask's test client (server time:
the whole request in this process, the database on the loopback), reporting the median and
the worst:

* the runs page: first page; each filter (status, function, function + status, time
  range, event name, text in the event data, all together); a later page through a cursor
  (the 20th page of older runs); the previous page (``before``); the table fragment the
  live refresh fetches;
* a run's page (a run of five steps; a failed one).

Run: ``python bench/dashboard_pages.py`` (``--runs 200000`` for a quicker look;
``--keep`` keeps the database and prints its URL). Target: under 200 ms each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
START_MS = 1_780_000_000_000  # 2026-05-28: the runs span the --days before it ends
TARGET_MS = 200

# ULID of (ms, n): 10 Crockford characters of the time, then 16 of md5(n) (hex digits are
# Crockford characters), so ids sort by time as the engine's do.
ULID_FN = f"""
CREATE FUNCTION bench_ulid(ms bigint, n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT (SELECT string_agg(substr('{ALPHABET}', ((ms >> (45 - 5 * i)) & 31)::int + 1, 1), ''
                            ORDER BY i) FROM generate_series(0, 9) i)
         || upper(substr(md5(n::text), 1, 16))
$$"""


def fill(conn, *, runs: int, functions: int, names: int, days: int) -> dict:
    spacing = max(1, days * 86_400_000 // runs)
    t = time.perf_counter()
    conn.execute(ULID_FN)
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '256MB'")
    conn.execute("SET work_mem = '64MB'")
    # the bulk load goes in without the indexes, which are built after (as a restore does)
    indexes = [r[0] for r in conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename IN ('tj_runs', 'tj_steps', 'tj_events') "
        "AND indexname NOT LIKE '%pkey'")]
    for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('tj_runs', 'tj_steps', "
            "'tj_events') AND indexname NOT LIKE '%pkey'").fetchall():
        conn.execute(f'DROP INDEX "{name}"')
    for table in ("tj_runs", "tj_steps", "tj_events"):
        conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{table}_pkey"')
    conn.execute(
        'INSERT INTO "tj_events" ("id", "name", "data", "user", "external_id", "ts", "v", '
        '"received_at") SELECT bench_ulid(%s + g * %s, -g), '
        "'bench/order.' || (g %% %s), "
        """'{"order": "A-' || g || '", "customer": "c' || (g %% 5000) || '", "note": "'"""
        """ || md5(g::text) || '"}', NULL, NULL, %s + g * %s, NULL, %s + g * %s """
        "FROM generate_series(1::bigint, %s::bigint) g",
        (START_MS, spacing, names, START_MS, spacing, START_MS, spacing, runs))
    status = ("CASE WHEN g %% 97 = 0 THEN 'failed' WHEN g %% 211 = 0 THEN 'cancelled' "
              "WHEN g > %s - 40 THEN 'queued' WHEN g %% 1009 = 0 THEN 'sleeping' "
              "WHEN g > %s - 60 THEN 'running' ELSE 'completed' END")
    conn.execute(
        f'INSERT INTO "tj_runs" ("id", "app_id", "function_id", "event_id", "status", '
        '"output", "error", "attempt", "created_at", "started_at", "ended_at", "wake_at", '
        '"inflight", "signal") SELECT bench_ulid(%s + g * %s, g), \'bench\', '
        "'fn-' || (g %% %s), bench_ulid(%s + g * %s, -g), s.status, "
        """CASE WHEN s.status = 'completed' THEN '{"ok": true}' END, """
        """CASE WHEN s.status = 'failed' THEN '{"name": "ValueError", "message": "card declined '"""
        """ || g || '"}' END, 0, %s + g * %s, %s + g * %s + 5, """
        "CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN %s + g * %s + 900 END, "
        "%s + g * %s, 0, 0 "
        f"FROM generate_series(1::bigint, %s::bigint) g, LATERAL (SELECT {status} AS status) s",
        (START_MS, spacing, functions, START_MS, spacing, START_MS, spacing, START_MS, spacing,
         START_MS, spacing, START_MS, spacing, runs, runs, runs))
    conn.execute(
        'INSERT INTO "tj_steps" ("run_id", "key", "name", "kind", "position", "status", '
        '"attempts", "output", "error", "started_at", "ended_at", "wake_at") '
        "SELECT r.id, 'step-' || p, 'step-' || p, CASE WHEN p = 3 THEN 'sleep' ELSE 'run' END, "
        "p, CASE WHEN r.status = 'failed' AND p = 5 THEN 'failed' ELSE 'completed' END, "
        """1, CASE WHEN p <> 3 THEN '{"step": ' || p || '}' END, """
        """CASE WHEN r.status = 'failed' AND p = 5 THEN '{"name": "ValueError", "message": """
        """"card declined", "stack": "Traceback (most recent call last):\\n  ..."}' END, """
        "r.created_at + 10 + p * 150, r.created_at + 10 + p * 150 + 100, NULL "
        'FROM "tj_runs" r, generate_series(1, 5) p')
    loaded = time.perf_counter() - t
    t = time.perf_counter()
    for table in ("tj_runs", "tj_events"):
        conn.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY ("id")')
    conn.execute('ALTER TABLE "tj_steps" ADD PRIMARY KEY ("run_id", "key")')
    for definition in indexes:
        conn.execute(definition)
    conn.execute("VACUUM ANALYZE") if conn.autocommit else None
    indexed = time.perf_counter() - t
    return {"load_s": round(loaded, 1), "index_s": round(indexed, 1), "spacing_ms": spacing}


def timed(client, path: str, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.get_data(as_text=True)[:300])
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def later_cursor(runtime, pages: int) -> str:
    from tengo_jobs.store.run_pages import RunFilters, RunPages
    run_pages = RunPages(runtime.store.queries.d)
    cursor = None
    for _ in range(pages):
        cursor = run_pages.page(RunFilters(), cursor=cursor)["next_cursor"]
    return cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--functions", type=int, default=10)
    parser.add_argument("--names", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--compare-plans", action="store_true",
                        help="each runs-page case again on generic plans, side by side")
    parser.add_argument("--compare-index", action="store_true",
                        help="time the function filters again without m0014's index")
    parser.add_argument("--reuse", metavar="URL",
                        help="time the pages of a database a --keep run filled (no fill)")
    args = parser.parse_args()

    import psycopg

    from tengo_jobs.process.web import create_app
    from tengo_jobs.testing import make_test_runtime

    os.environ.setdefault("TENGO_ENV", "development")
    with _database(args) as url:
        runtime = make_test_runtime(url, migrate=not args.reuse)
        with psycopg.connect(url, autocommit=True) as conn:
            if args.reuse:
                count = conn.execute("SELECT count(*) FROM tj_runs").fetchone()[0]
                filled = {"load_s": "-", "index_s": "-",
                          "spacing_ms": max(1, args.days * 86_400_000 // count)}
                args.runs = count
            else:
                filled = fill(conn, runs=args.runs, functions=args.functions, names=args.names,
                              days=args.days)
            sizes = conn.execute(
                "SELECT (SELECT count(*) FROM tj_runs), (SELECT count(*) FROM tj_steps), "
                "pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"# {sizes[0]:,} runs, {sizes[1]:,} steps, {sizes[2]}; loaded in "
              f"{filled['load_s']} s, indexed in {filled['index_s']} s", flush=True)
        app = create_app(runtime)
        client = app.test_client()
        end_ms = START_MS + args.runs * filled["spacing_ms"]
        day = 86_400_000
        iso = lambda ms: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000))  # noqa: E731
        cursor = later_cursor(runtime, 20)
        queries = runtime.store.queries
        failed = queries.list_runs(status="failed", limit=1)["data"][0]["id"]
        completed = queries.list_runs(status="completed", limit=1)["data"][0]["id"]
        cases = [
            ("first page", "/"),
            ("status=failed", "/?status=failed"),
            ("status=queued (rare)", "/?status=queued"),
            ("function", "/?function=fn-3"),
            ("function + status=failed", "/?function=fn-3&status=failed"),
            ("function with no runs", "/?function=fn-none"),
            ("function + text in event data", "/?function=fn-3&text=c42"),
            ("time range (one day, 10 days back)",
             f"/?from={iso(end_ms - 11 * day)}&to={iso(end_ms - 10 * day)}"),
            ("event name", "/?event=bench/order.7"),
            ("text in event data", "/?text=c4242"),
            ("text, no match (window bound)", "/?text=no-such-text"),
            ("all filters", f"/?status=completed&function=fn-3&event=bench/order.3&text=c42"
                            f"&from={iso(end_ms - 20 * day)}&to={iso(end_ms)}"),
            ("page 21 (cursor)", f"/?cursor={cursor}"),
            ("newer page (before)", f"/?before={cursor}"),
            ("table fragment (live refresh)", "/runs-table"),
            ("run page (completed, 5 steps)", f"/runs/{completed}"),
            ("run page (failed, 5 steps)", f"/runs/{failed}"),
        ]
        client.get("/")  # warm: templates compiled, connection open
        rows = []
        for name, path in cases:
            result = timed(client, path, args.repeat)
            rows.append((name, result))
            print(f"{name:40s} median {result['median_ms']:7.1f} ms   max {result['max_ms']:7.1f} ms"
                  f"   {'ok' if result['median_ms'] < TARGET_MS else 'OVER'}", flush=True)
        if args.compare_plans:
            rows += compare_generic_plans(client, cases, args.repeat)
        if args.compare_index:
            rows += compare_without_index(url, client, cases, args.repeat)
        print(f"\n| page | median ms | max ms |  ({platform.node()}, load "
              f"{os.getloadavg()[0]:.1f}, {args.repeat} requests each)")
        print("| --- | --- | --- |")
        for name, result in rows:
            print(f"| {name} | {result['median_ms']} | {result['max_ms']} |")
        runtime.close()


def compare_generic_plans(client, cases, repeat: int) -> list:
    """Each case again, alternating request by request between the pages as shipped (with a
    function filter, reads planned for their values) and the same reads on the connections'
    generic plans only."""
    import contextlib as _contextlib

    from tengo_jobs.store.run_pages import RunPages

    shipped = RunPages._planned_for_values
    generic = _contextlib.contextmanager(lambda self, filters: iter([None]))
    out = []
    for name, path in cases:
        if path.startswith("/runs/"):
            continue
        times: dict[str, list[float]] = {"custom": [], "generic": []}
        for _ in range(repeat):
            for label, plan in (("custom", shipped), ("generic", generic)):
                RunPages._planned_for_values = plan
                t = time.perf_counter()
                assert client.get(path).status_code == 200
                times[label].append((time.perf_counter() - t) * 1000)
        RunPages._planned_for_values = shipped
        custom, plain = statistics.median(times["custom"]), statistics.median(times["generic"])
        print(f"{name:40s} custom plans {custom:7.1f} ms   generic plans {plain:8.1f} ms   "
              f"ratio {plain / custom:5.1f}", flush=True)
        out.append((f"{name}: generic plans (custom {custom:.1f})",
                    {"median_ms": round(plain, 1), "max_ms": round(max(times["generic"]), 1)}))
    return out


def compare_without_index(url: str, client, cases, repeat: int) -> list:
    """The function-filtered cases again without m0014's index (dropped, then rebuilt)."""
    import psycopg

    index = "tj_runs_function_status_id"
    with psycopg.connect(url, autocommit=True) as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                  (index,)).fetchone()
        if definition is None:
            print("# no", index, "to compare without")
            return []
        conn.execute(f'DROP INDEX "{index}"')
        try:
            out = []
            for name, path in cases:
                if "function" not in path:
                    continue
                result = timed(client, path, repeat)
                out.append((f"{name}, without {index}", result))
                print(f"{name + ' (no m0014 index)':40s} median {result['median_ms']:7.1f} ms   "
                      f"max {result['max_ms']:7.1f} ms", flush=True)
        finally:
            conn.execute(definition[0])
            conn.execute('ANALYZE "tj_runs"')
    for name, path in cases:
        if "function" in path:
            result = timed(client, path, repeat)
            out.append((f"{name}, with the index again", result))
    return out


@contextlib.contextmanager
def _database(args):
    if args.reuse:
        yield args.reuse
    elif args.keep:
        import psycopg
        name = f"tj_bench_dashruns_{os.getpid()}"
        with psycopg.connect(H.POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{H.POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
        print("# kept (drop it when done):", url, flush=True)
        yield url
    else:
        with H.postgres_url() as url:
            yield url


if __name__ == "__main__":
    main()
