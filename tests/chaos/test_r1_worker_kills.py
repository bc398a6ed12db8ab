"""R1: SIGKILL a worker at random points while four-step runs execute (Redis + PostgreSQL,
two worker processes). Every run completes; committed steps never re-ran.

Events arrive over HTTP at a steady rate while one of the two ``dramatiq`` processes,
picked at random, is SIGKILLed (the whole process group) every 0.5–4 s and started
again at once, as a process manager would. A scheduler process sweeps. Checked from
the tables:

- every event has one run, completed, with its four steps committed and the output
  built from the tokens those steps committed;
- ``chaos_effects`` (one row per execution of a step body): no body ran after its
  checkpoint was committed, and every second execution of a step follows a kill of
  the process that ran the first one (the only reason a step may run twice here).
"""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from . import size
from .stack import (Loader, Sql, Stack, chaos_env, check_no_committed_step_reran, group_pids,
                    report, wait_all_final)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(240, 1200))]

RUNS = size(150, 1000)
RATE = size(8.0, 8.0)  # events per second: the load spans RUNS / RATE seconds
THREADS = 8


def test_sigkilled_workers_complete_every_run_and_never_rerun_a_committed_step(
        tmp_path, redis_url, postgres_url, queue_name):
    rng = random.Random()
    stack = Stack(tmp_path, chaos_env(postgres_url, redis_url, queue_name))
    sql = Sql(postgres_url)
    kills: list[dict] = []
    try:
        stack.web()
        stack.scheduler()
        workers = [stack.worker(threads=THREADS) for _ in range(2)]
        for w in workers:
            stack.wait_worker_ready(w)
        loader = Loader(stack.base, lambda i, n: [{"name": "chaos/four", "data": {"n": i + k}}
                                                  for k in range(n)],
                        rate=RATE, batch=4, limit=RUNS)
        loader.start()
        started = time.monotonic()
        while loader.is_alive() or sql.unfinished("chaos-four") > RUNS // 10:
            time.sleep(rng.uniform(0.5, 4.0))
            i = rng.randrange(2)
            victim = workers[i]
            pids = group_pids(victim.pid)
            before = int(time.time() * 1000)
            victim.kill(signal.SIGKILL)
            victim.popen.wait(10)
            kills.append({"before": before, "after": int(time.time() * 1000), "pids": pids})
            victim.stop()
            workers[i] = stack.worker(threads=THREADS)
            if time.monotonic() - started > size(150, 900):
                break
        loader.stop()
        assert loader.sent == RUNS, loader.statuses
        counts = wait_all_final(sql, expected=RUNS, timeout=size(90, 300), stack=stack)
        elapsed = time.monotonic() - started
    finally:
        stack.stop()

    assert counts == {"completed": RUNS}, counts
    runs = sql.rows("SELECT id, output FROM tj_runs WHERE function_id = 'chaos-four'")
    assert sorted(json.loads(o)["n"] for _, o in runs) == list(range(RUNS))
    steps = {}
    for run_id, key, output in sql.rows(
            "SELECT run_id, key, output FROM tj_steps WHERE kind = 'run' AND status = 'completed'"):
        steps[(run_id, key)] = json.loads(output)["token"]
    for run_id, output in runs:
        assert json.loads(output)["tokens"] == [steps[(run_id, k)] for k in ("s1", "s2", "s3", "s4")]

    figures = check_no_committed_step_reran(sql)
    assert figures["steps"] == RUNS * 4

    # every re-execution follows a kill of the process that ran the previous execution
    unexplained = []
    previous = {}
    for run_id, key, pid, at_ms in sql.rows(
            "SELECT run_id, step_key, pid, at_ms FROM chaos_effects WHERE kind = 'run' "
            "ORDER BY run_id, step_key, at_ms, id"):
        prev = previous.get((run_id, key))
        if prev is not None:
            p_pid, p_at = prev
            if not any(p_pid in k["pids"] and p_at <= k["after"] and k["before"] <= at_ms
                       for k in kills):
                unexplained.append((run_id, key, p_pid, p_at, pid, at_ms))
        previous[(run_id, key)] = (pid, at_ms)
    assert not unexplained, f"steps that ran again with no kill of their process between: " \
                            f"{unexplained[:10]}"
    assert figures["re_executions"] <= len(kills) * THREADS
    report("R1", runs=RUNS, kills=len(kills), seconds=round(elapsed, 1),
           intake=dict(loader.statuses), **figures)
