"""R7: a worker that stops past its lease comes back to find the run taken over.

``chaos-stale``'s step ``slow`` blocks in its first execution until the test releases it.
Worker A takes the run and enters ``slow``; then A is cut off past its lease (2 s):

- **SIGSTOP** (``test_sigstopped_worker``): A's process group is stopped, as a long GC
  pause, a frozen VM or a laptop lid would stop it;
- **partition** (``test_partitioned_worker``): A runs in its own network namespace and
  reaches a private PostgreSQL cluster and a private Redis over a veth pair; the test sets
  the host end of the link down (packets dropped, no reset), and up again later.

Worker B (started once A is cut off) takes the run when the sweeper re-sends it, runs
``slow`` again and finishes the run. Then A is let go (SIGCONT / link up) and released
from ``slow``: its checkpoint must be refused (A logs the lost lease). Checked: the run
completed, ``slow`` and ``after`` committed with B's executions (token and pid), A never
executed ``after``, nothing A produced is in ``tj_steps`` or the run's output.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from procs import wait_until

from .servers import Netns, PrivateCluster, PrivateRedis
from .stack import Sql, Stack, chaos_env, report, wait_all_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = "2s"


def _run_the_stale_scenario(tmp_path, stack: Stack, sql: Sql, *, start_a, cut, restore, label):
    release = tmp_path / "release"
    stack.web()
    stack.scheduler()
    a = start_a()
    a_children = stack.wait_worker_ready(a)
    [event_id] = stack.send({"name": "chaos/stale", "data": {"release": str(release)}})
    wait_until(lambda: sql.scalar("SELECT count(*) FROM chaos_effects WHERE step_key = 'slow'"),
               timeout=30, interval=0.05, message="worker A to enter the slow step")
    [(run_id, a_pid)] = sql.rows("SELECT run_id, pid FROM chaos_effects WHERE step_key = 'slow'")
    assert a_pid in a_children
    cut_at = time.monotonic()
    cut(a)
    b = stack.worker(threads=2)
    b_children = stack.wait_worker_ready(b)
    wait_all_final(sql, expected=1, function_id="chaos-stale", timeout=60, stack=stack,
                   interval=0.1)
    taken_over_s = time.monotonic() - cut_at
    restore(a)
    release.write_text("go")
    wait_until(lambda: "lease lost" in a.log(), timeout=90, interval=0.2,
               message=f"worker A to log that its checkpoint was refused\n{a.log()[-3000:]}")
    time.sleep(1)

    [(status, output)] = sql.rows("SELECT status, output FROM tj_runs WHERE id = %s", (run_id,))
    assert status == "completed"
    steps = {k: json.loads(o) for k, o in sql.rows(
        "SELECT key, output FROM tj_steps WHERE run_id = %s AND status = 'completed'", (run_id,))}
    assert set(steps) == {"slow", "after"}
    executions = sql.rows("SELECT step_key, pid, token FROM chaos_effects WHERE run_id = %s "
                          "ORDER BY id", (run_id,))
    a_tokens = {tok for _, pid, tok in executions if pid in a_children}
    assert [k for k, pid, _ in executions if pid in a_children] == ["slow"], executions
    for key, out in steps.items():
        assert out["pid"] in b_children and out["token"] not in a_tokens, (key, out)
    assert json.loads(output)["slow"] == steps["slow"] and json.loads(output)["after"] == steps["after"]
    assert a.alive(), a.log()[-2000:]
    line = next(li for li in a.log().splitlines() if "lease lost" in li)
    report("R7", fault=label, taken_over_s=round(taken_over_s, 1), stale_log=line[-160:])
    return line


def test_sigstopped_worker(tmp_path, redis_url, postgres_url, queue_name):
    stack = Stack(tmp_path, chaos_env(postgres_url, redis_url, queue_name, TENGO_LEASE_TTL=LEASE))
    sql = Sql(postgres_url)
    try:
        _run_the_stale_scenario(
            tmp_path, stack, sql, start_a=lambda: stack.worker(threads=2),
            cut=lambda a: a.kill(signal.SIGSTOP), restore=lambda a: a.kill(signal.SIGCONT),
            label="SIGSTOP")
    finally:
        stack.stop()


def test_partitioned_worker(tmp_path, queue_name):
    ns = Netns()
    cluster = redis = stack = None
    try:
        cluster = PrivateCluster(listen=("127.0.0.1", ns.host_ip), trust_net=ns.net)
        cluster.start()
        dbname = f"tj_{uuid.uuid4().hex[:12]}"
        url = cluster.create_database(dbname)
        redis = PrivateRedis(tmp_path, bind=("127.0.0.1", ns.host_ip))
        redis.start()
        stack = Stack(tmp_path, chaos_env(url, redis.url(), queue_name, TENGO_LEASE_TTL=LEASE))
        sql = Sql(url)
        inside = {"DATABASE_URL": cluster.url(dbname, host=ns.host_ip),
                  "REDIS_URL": redis.url(host=ns.host_ip)}
        _run_the_stale_scenario(
            tmp_path, stack, sql,
            start_a=lambda: stack.worker(threads=2, prefix=ns.prefix(), **inside),
            cut=lambda a: ns.cut(), restore=lambda a: ns.heal(), label="partition")
    finally:
        if stack is not None:
            stack.stop()
        if redis is not None:
            redis.stop()
        if cluster is not None:
            cluster.destroy()
        ns.destroy()
