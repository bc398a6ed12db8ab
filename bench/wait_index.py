"""Benchmark: does the number of waiting runs slow the intake? (issue 8, "the wait matching is indexed")

One function waits for ``bench/order.paid`` with ``async.data.orderId == event.data.orderId``
(an indexable equality: the intake looks candidates up by event name, data path and key). The
benchmark drives one run to its wait through the engine, then clones its run, step and wait rows
on the database itself until N runs wait, each for its own ``orderId`` (the rows are the
engine's own, only the ids and keys differ). It then times ``jobs.send`` of a 100-event batch of
``bench/order.paid`` events:

* ``miss``: 100 events whose ``orderId`` no run waits for (the common case: most events resolve
  nothing);
* ``hit10``: 100 events of which 10 resolve a waiting run (those runs are woken in the same
  transaction).

for N = 0 (only the index entry exists), 1,000 and 100,000, ``--batches`` batches each (median and
p90 of the batch time). Run: ``python bench/wait_index.py`` (``--backends postgresql,sqlite``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

EVENT_CREATED = "bench/order.created"
EVENT_PAID = "bench/order.paid"


def _declare(jobs):
    @jobs.function("bench-await-payment", event=EVENT_CREATED)
    def await_payment(ctx, step):
        paid = step.wait_for_event("wait-payment", event=EVENT_PAID, timeout="7d",
                                   if_exp="async.data.orderId == event.data.orderId")
        return {"paid": paid is not None}


def _clone_sql(dialect: str, table: str, columns: list[str], replace: dict[str, str], n: int,
               where: str) -> str:
    """INSERT … SELECT of the one template row ``n`` times, with ``replace``'d expressions of g."""
    cols = ", ".join(f'"{c}"' for c in columns)
    exprs = ", ".join(replace.get(c, f'"{c}"') for c in columns)
    if dialect == "postgresql":
        series = f"generate_series(1, {n}) AS s(g)"
        return f'INSERT INTO "{table}" ({cols}) SELECT {exprs} FROM "{table}", {series} WHERE {where}'
    return (f'WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) '
            f'INSERT INTO "{table}" ({cols}) SELECT {exprs} FROM "{table}", s WHERE {where}')


def _columns(db, table: str) -> list[str]:
    return [c.name for c in db.get_columns(table)]


def _grow_waits(runtime, template_run: str, have: int, want: int) -> None:
    """Clone the template run's rows so that ``want`` runs wait (runs ``bw<g>``, keys ``k<g>``)."""
    from tengo_jobs.store.schema import RUNS, STEPS, WAITS

    db = runtime.store.db
    dialect = "postgresql" if runtime.settings.database_url.startswith("postgres") else "sqlite"
    for lo in range(have + 1, want + 1, 20_000):
        n = min(20_000, want - lo + 1)
        g = f"CAST((g + {lo - 1}) AS TEXT)"
        run_id = f"('bw' || {g})"
        where = f"\"run_id\" = '{template_run}'"
        with db.atomic():
            db.execute_sql(_clone_sql(dialect, RUNS, _columns(db, RUNS), {"id": run_id}, n,
                                      f"\"id\" = '{template_run}'"))
            db.execute_sql(_clone_sql(dialect, STEPS, _columns(db, STEPS), {"run_id": run_id}, n,
                                      where))
            db.execute_sql(_clone_sql(dialect, WAITS, [c for c in _columns(db, WAITS) if c != "id"],
                                      {"run_id": run_id, "match_key": f"('string:k' || {g})"}, n,
                                      where))
    if dialect == "postgresql":  # as autovacuum would after such growth; SQLite's engine never
        db.execute_sql("ANALYZE")  # analyzes (with sqlite_stat1 it would scan for IS NULL)


def _count_waits(runtime) -> int:
    from tengo_jobs.store.schema import WAITS

    return runtime.store.db.execute_sql(f'SELECT COUNT(*) FROM "{WAITS}"').fetchone()[0]


def _time_batches(runtime, *, batches: int, hits: int, first_key: int) -> list[float]:
    times = []
    next_hit = [first_key]
    for b in range(batches):
        events = [{"name": EVENT_PAID, "data": {"orderId": f"miss-{uuid.uuid4().hex}"}}
                  for _ in range(100 - hits)]
        for _ in range(hits):  # resolve waits that still exist: keys k1, k2, … in order
            events.append({"name": EVENT_PAID, "data": {"orderId": f"k{next_hit[0]}"}})
            next_hit[0] += 1
        t0 = time.perf_counter()
        runtime.send(events)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {"median_ms": statistics.median(ordered),
            "p90_ms": ordered[int(0.9 * (len(ordered) - 1))], "batches": len(ordered)}


def measure(backend: str, sizes: list[int], batches: int) -> list[dict]:
    from tengo_jobs import Jobs
    from tengo_jobs.testing import JobsTester, make_test_runtime

    rows = []
    for mode, hits in (("miss", 0), ("hit10", 10)):
        ctx = H.postgres_url() if backend == "postgresql" else H.sqlite_url()
        with ctx as url:
            runtime = make_test_runtime(url)
            _declare(Jobs("bench-waits", runtime=runtime))
            tester = JobsTester(runtime)
            tester.send({"name": EVENT_CREATED, "data": {"orderId": "template"}})
            [template] = tester.run_until_idle(advance_time=False)
            assert template.status == "waiting", template.status
            have = 0
            for size in sizes:
                if hits and size < batches * hits:
                    continue  # not enough waiting runs to resolve 10 per batch
                _grow_waits(runtime, template.id, have, size)
                first_key, have = have + 1, size  # the hits resolve keys of this growth only
                waiting = _count_waits(runtime)
                runtime.send({"name": EVENT_PAID, "data": {"orderId": "warm"}})
                times = _time_batches(runtime, batches=batches, hits=hits, first_key=first_key)
                row = {"backend": backend, "mode": mode, "waiting": waiting, **_summary(times)}
                print(json.dumps(row), flush=True)
                rows.append(row)
            runtime.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--sizes", default="0,1000,100000")  # waiting runs besides the template
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for backend in args.backends.split(","):
        rows += measure(backend, sizes, args.batches)
    print(f"# {platform.node()} Python {platform.python_version()}")
    print("| backend | events | waiting runs | batch of 100 median ms | p90 ms | vs fewest waiting |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        base = next(r for r in rows if r["backend"] == row["backend"] and r["mode"] == row["mode"])
        print(f"| {row['backend']} | {row['mode']} | {row['waiting']:,} | {row['median_ms']:.2f} | "
              f"{row['p90_ms']:.2f} | {row['median_ms'] / base['median_ms']:.2f}× |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
