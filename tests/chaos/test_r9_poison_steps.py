"""R9: poison steps. A step that raises, one that calls ``sys.exit``, one that SIGKILLs its
own process, each in a function with ``retries=2``: exactly ``1 + retries`` executions of
the step (DESIGN.md: attempts are recorded before the step runs, so a step that crashes
its process is not retried forever), then the run is failed, then its ``on_failure``
handler runs exactly once.

The worker runs under a supervisor that starts it again when it exits (as systemd,
Kubernetes or Heroku would), so a crashing step gets as many chances as the engine gives
it. The test stops as soon as a step has run more often than allowed.
"""

from __future__ import annotations

import json
import time

import pytest

from .funcs import POISON_RETRIES
from .stack import RetriedForever, Sql, Stack, Supervisor, chaos_env, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ALLOWED = 1 + POISON_RETRIES


@pytest.mark.parametrize("how", ["raise", "exit", "kill"])
def test_poison_step_runs_one_plus_retries_times_then_fails_once(how, tmp_path, redis_url,
                                                                 postgres_url, queue_name):
    fn = f"chaos-poison-{how}"
    stack = Stack(tmp_path, chaos_env(postgres_url, redis_url, queue_name))
    sql = Sql(postgres_url)
    supervisor = None
    try:
        stack.web()
        stack.scheduler()
        supervisor = Supervisor(stack, threads=2)
        supervisor.start()
        [event_id] = stack.send({"name": f"chaos/poison-{how}", "data": {"how": how}})
        run_id = None
        deadline = time.monotonic() + 90
        while True:
            row = sql.rows("SELECT id, status FROM tj_runs WHERE event_id = %s", (event_id,))
            run_id, status = row[0] if row else (None, None)
            executions = sql.scalar("SELECT count(*) FROM chaos_effects WHERE step_key = 'poison'")
            if executions > ALLOWED:
                raise RetriedForever(
                    f"{fn}: the poison step ran {executions} times (allowed {ALLOWED}); run "
                    f"{run_id} is {status}, the worker was restarted {supervisor.restarts} "
                    f"times\nsteps: {_steps(sql, run_id)}\n{stack.logs(1500)}")
            if status in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, f"{fn}: run {run_id} still {status}\n{stack.logs()}"
            time.sleep(0.2)
        handler_deadline = time.monotonic() + 30
        while sql.unfinished() and time.monotonic() < handler_deadline:
            time.sleep(0.2)
        time.sleep(3)  # several sweeps later: nothing runs again
    finally:
        if supervisor is not None:
            supervisor.stop()
        stack.stop()

    executions = sql.scalar("SELECT count(*) FROM chaos_effects WHERE step_key = 'poison'")
    assert executions == ALLOWED, f"{fn}: {executions} executions, expected {ALLOWED}"
    assert status == "failed", (status, _steps(sql, run_id))
    [(step_status, attempts)] = sql.rows(
        "SELECT status, attempts FROM tj_steps WHERE run_id = %s AND key = 'poison'", (run_id,))
    assert (step_status, attempts) == ("failed", ALLOWED)
    handlers = sql.rows("SELECT id, status, output FROM tj_runs WHERE function_id = %s",
                        (f"{fn}-failure",))
    assert len(handlers) == 1 and handlers[0][1] == "completed", handlers
    assert json.loads(handlers[0][2])["failed_run"] == run_id
    assert sql.scalar("SELECT count(*) FROM chaos_effects WHERE step_key = 'on-failure' "
                      "AND run_id = %s", (run_id,)) == 1
    report("R9", how=how, executions=executions, worker_restarts=supervisor.restarts)


def _steps(sql: Sql, run_id) -> str:
    if run_id is None:
        return "(no run)"
    return repr(sql.rows("SELECT key, status, attempts, error FROM tj_steps WHERE run_id = %s",
                         (run_id,)))
