"""R3: Redis SIGKILLed and restarted empty under load; the workers are left running.

A private ``redis-server`` (its own port, no persistence) carries the wake-ups of web,
two workers and a scheduler. Events arrive at a steady rate over HTTP, half of them
with a 300 ms sleep (timers); in the middle of the load a burst of events fills the
queue, Redis is SIGKILLed with that backlog in it, stays down ``DOWN`` seconds while
events keep arriving (their wake-ups cannot be sent), and comes back empty on the same
port.

Checked: every event answered 2xx is in ``tj_events`` and its run completed; the two
worker processes are the ones started at the beginning (same pids, never restarted)
and each executed steps after Redis came back (they reconnected by themselves); the
scheduler is still running.
"""

from __future__ import annotations

import time

import pytest

from . import size
from .servers import PrivateRedis
from .stack import Loader, Sql, Stack, chaos_env, check_no_committed_step_reran, group_pids, \
    report, wait_all_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(180, 900))]

LOAD_S = size(24, 240)
RATE = size(10.0, 12.0)
DOWN = size(2.0, 5.0)
RESTARTS = size(1, 4)
BURST = size(60, 150)  # events sent just before each kill, so Redis holds a backlog


def test_redis_restarted_empty_under_load_loses_no_accepted_event(tmp_path, postgres_url,
                                                                  queue_name):
    redis = PrivateRedis(tmp_path)
    redis.start()
    stack = Stack(tmp_path, chaos_env(postgres_url, redis.url(), queue_name))
    sql = Sql(postgres_url)
    try:
        stack.web()
        scheduler = stack.scheduler()
        workers = [stack.worker(threads=8) for _ in range(2)]
        worker_pids = {w.pid: stack.wait_worker_ready(w) for w in workers}
        loader = Loader(stack.base, lambda i, n: [{"name": "chaos/four",
                                                   "data": {"n": i + k, "nap": (i + k) % 2 == 0}}
                                                  for k in range(n)], rate=RATE, batch=5)
        loader.start()
        started = time.monotonic()
        back_at_ms = []
        accepted_bursts: list[str] = []
        lost: list[int] = []
        for r in range(RESTARTS):
            time.sleep(LOAD_S / (RESTARTS + 1))
            burst = stack.send([{"name": "chaos/four", "data": {"n": -1, "burst": r}}
                                for _ in range(BURST)])  # a backlog for the kill to destroy
            accepted_bursts.extend(burst)
            queued, before = redis.messages(queue_name), redis.run_id
            redis.kill()
            time.sleep(DOWN)
            redis.start()  # no persistence: a new, empty server (the load refills it at once)
            assert redis.run_id != before
            back_at_ms.append(int(time.time() * 1000))
            lost.append(queued)
            print(f"redis restart {r + 1}: {queued} queued messages lost")
        time.sleep(max(0.0, started + LOAD_S - time.monotonic()))
        loader.stop()
        accepted = loader.accepted + accepted_bursts
        counts = wait_all_final(sql, expected=len(accepted), timeout=size(60, 180), stack=stack)
        settled = time.monotonic() - started - LOAD_S

        assert all(w.alive() for w in workers), stack.logs()
        assert scheduler.alive(), scheduler.log()[-3000:]
        for w in workers:  # the same processes: dramatiq did not restart its worker process
            assert [p for p in group_pids(w.pid) if p != w.pid] == worker_pids[w.pid]
    finally:
        stack.stop()
        redis.stop()

    stored = {r[0] for r in sql.rows("SELECT id FROM tj_events")}
    assert set(accepted) <= stored, "a 2xx answer for an event that is not stored"
    assert counts == {"completed": len(stored)}, counts
    per_event = sql.rows("SELECT e.id FROM tj_events e LEFT JOIN tj_runs r ON r.event_id = e.id "
                         "WHERE r.id IS NULL")
    assert not per_event, f"stored events without a run: {per_event[:5]}"
    for w in workers:
        children = worker_pids[w.pid]
        after = sql.scalar("SELECT count(*) FROM chaos_effects WHERE pid = ANY(%s) AND at_ms > %s",
                           (children, back_at_ms[-1]))
        assert after > 0, f"worker {w.pid} executed nothing after Redis came back:\n{w.log()[-3000:]}"
    figures = check_no_committed_step_reran(sql)
    report("R3", events=len(accepted), restarts=RESTARTS, down_s=DOWN, messages_lost=lost,
           intake=dict(loader.statuses),
           settled_s=round(settled, 1), **figures)
