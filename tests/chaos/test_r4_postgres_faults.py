"""R4: PostgreSQL faults while runs execute (web, 2 workers, 2 schedulers).

Every few seconds the database goes away for 0–2 s, in one of two ways:

- ``terminate``: every connection to the test's database is killed with
  ``pg_terminate_backend`` (what a failover or a restart does to clients); on the shared
  server, on the test's own database only;
- ``restart``: a private PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temp dir) is
  stopped with ``pg_ctl stop -m immediate``, left down 0–2 s, and started again.

Meanwhile events arrive over HTTP at a steady rate (``chaos-four``, half with a 300 ms
sleep, so the schedulers' timers matter). Fast size: faults every 3–8 s for 25 s, about
200 runs, all done within 60 s of the last fault. ``CHAOS_FULL=1`` (the issue's size):
both kinds alternating on a private cluster every 5–40 s for 10 minutes, 5,000 runs, all
done within 2 minutes of the last fault.

Checked: no 2xx for an event that is not in ``tj_events``; every stored event's run
completed within the bound; no step body ran after its checkpoint was committed; every
process is the one started at the beginning (no restart) and each works on its own:
each worker executes a batch while the other is SIGSTOPped, each scheduler fires the
timers of a batch of sleeping runs while the other is SIGSTOPped, the web accepts events.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid

import pytest

from procs import wait_until

from . import FULL, size
from .servers import PrivateCluster, terminate_backends
from .stack import (Loader, NotRecovered, Sql, Stack, chaos_env, check_no_committed_step_reran,
                    group_pids, report, wait_all_final)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(300, 1500))]

FAULT_WINDOW_S = size(25, 600)
FAULT_EVERY_S = size((3, 8), (5, 40))
RUNS = size(200, 5000)
BOUND_S = size(60, 120)



class Faults(threading.Thread):
    """Injects the faults for ``window`` seconds; ``log`` says what happened when."""

    def __init__(self, kinds, *, window: float, every: tuple[float, float], terminate, stop,
                 start):
        super().__init__(name="chaos-faults", daemon=True)
        self.kinds, self.window, self.every = kinds, window, every
        self.terminate, self.stop_db, self.start_db = terminate, stop, start
        self.log: list[dict] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random()
        end = time.monotonic() + self.window
        try:
            while True:
                time.sleep(rng.uniform(*self.every))
                if time.monotonic() > end:
                    return
                kind = self.kinds[len(self.log) % len(self.kinds)]
                down = rng.uniform(0, 2)
                began = time.time()
                if kind == "terminate":
                    killed = self.terminate()
                    time.sleep(down)
                    killed += self.terminate()  # and whoever reconnected too early
                else:
                    self.stop_db()
                    time.sleep(down)
                    self.start_db()
                    killed = None
                self.log.append({"kind": kind, "at": began, "down_s": round(down, 2),
                                 "took_s": round(time.time() - began, 2), "killed": killed})
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _diagnose(stack: Stack) -> str:
    """The last error line of each process, to say which ones did not heal."""
    out = []
    for p in stack.procs:
        lines = [li for li in p.log().splitlines()
                 if any(w in li for w in ("rror", "failed", "closed", "WARNING", "CRITICAL"))]
        out.append(f"{p.log_path.name} ({'alive' if p.alive() else 'exited'}): "
                   f"{len(lines)} error lines; last: {lines[-1][-300:] if lines else '-'}")
    return "\n".join(out)


def _probe(stack: Stack, sql: Sql, *, pause, n: int, label: str, timeout: float = 45) -> set[int]:
    """Pause ``pause`` (SIGSTOP), send ``n`` events with a sleep, wait for their runs; returns
    the pids that executed them. Whatever runs them runs without ``pause``."""
    pause.kill(signal.SIGSTOP)
    try:
        ids = stack.send([{"name": "chaos/four", "data": {"n": -1, "nap": True, "probe": label}}
                          for _ in range(n)])
        def done():
            rows = sql.rows("SELECT status FROM tj_runs WHERE event_id = ANY(%s)", (ids,))
            return len(rows) == n and all(s == "completed" for (s,) in rows)
        wait_until(done, timeout=timeout, interval=0.2,
                   message=f"probe {label}: runs to complete while {pause.log_path.name} is "
                           f"stopped\n{_diagnose(stack)}")
        return {pid for (pid,) in sql.rows(
            "SELECT DISTINCT e.pid FROM chaos_effects e JOIN tj_runs r ON r.id = e.run_id "
            "WHERE r.event_id = ANY(%s)", (ids,))}
    finally:
        pause.kill(signal.SIGCONT)


def _scenario(tmp_path, db_url: str, dbname: str, redis_url: str, queue_name: str, kinds, *,
              terminate, stop, start, label: str) -> None:
    stack = Stack(tmp_path, chaos_env(db_url, redis_url, queue_name))
    sql = Sql(db_url)
    rate = RUNS / FAULT_WINDOW_S
    try:
        web = stack.web()
        schedulers = [stack.scheduler() for _ in range(2)]
        workers = [stack.worker(threads=8) for _ in range(2)]
        children = {w.pid: stack.wait_worker_ready(w) for w in workers}
        loader = Loader(stack.base, lambda i, n: [{"name": "chaos/four",
                                                   "data": {"n": i + k, "nap": (i + k) % 2 == 0}}
                                                  for k in range(n)],
                        rate=rate, batch=5, timeout=20)
        faults = Faults(kinds, window=FAULT_WINDOW_S, every=FAULT_EVERY_S, terminate=terminate,
                        stop=stop, start=start)
        loader.start()
        faults.start()
        faults.join(FAULT_WINDOW_S + 120)
        loader.stop()
        assert faults.error is None, repr(faults.error)
        assert faults.log, "no fault was injected"
        last_fault = max(f["at"] + f["took_s"] for f in faults.log)
        accepted = loader.accepted
        stored = {r[0] for r in sql.rows("SELECT id FROM tj_events")}
        lost_2xx = set(accepted) - stored
        assert not lost_2xx, f"2xx answers for events that were not stored: {sorted(lost_2xx)[:10]}"
        remaining = BOUND_S - (time.time() - last_fault)
        try:
            counts = wait_all_final(sql, expected=len(stored), timeout=max(1.0, remaining))
        except AssertionError as exc:
            raise NotRecovered(f"{label}: runs not complete {BOUND_S}s after the last fault "
                                 f"({len(faults.log)} faults): {exc.args[0].splitlines()[0]}\n"
                                 f"{_diagnose(stack)}") from None
        done_after_s = time.time() - last_fault
        assert counts == {"completed": len(stored)}, counts

        alive = [p for p in (web, *schedulers, *workers) if not p.alive()]
        assert not alive, f"processes exited: {[p.log_path.name for p in alive]}\n{stack.logs()}"
        for w in workers:
            assert [p for p in group_pids(w.pid) if p != w.pid] == children[w.pid]
        for i, w in enumerate(workers):  # each worker works on its own
            pids = _probe(stack, sql, pause=workers[1 - i], n=8, label=f"worker{i + 1}")
            assert pids <= set(children[w.pid]), (pids, children)
        for i in range(2):  # each scheduler fires timers on its own
            _probe(stack, sql, pause=schedulers[1 - i], n=5, label=f"scheduler{i + 1}")
    finally:
        stack.stop()
    missing = sql.rows("SELECT e.id FROM tj_events e LEFT JOIN tj_runs r ON r.event_id = e.id "
                       "WHERE r.id IS NULL LIMIT 5")
    assert not missing, f"stored events without a run: {missing}"
    figures = check_no_committed_step_reran(sql)
    report("R4", kinds=kinds, faults=len(faults.log), fault_window_s=FAULT_WINDOW_S,
           events=len(accepted), intake={str(k): v for k, v in loader.statuses.items()},
           all_done_after_last_fault_s=round(done_after_s, 1),
           fault_log=[(f["kind"], f["down_s"]) for f in faults.log][:50], **figures)


@pytest.mark.skipif(FULL, reason="CHAOS_FULL=1 runs the mixed 10-minute version instead")
def test_connections_killed(tmp_path, redis_url, postgres_url, queue_name):
    from conftest import POSTGRES_URL

    dbname = postgres_url.rsplit("/", 1)[1]
    _scenario(tmp_path, postgres_url, dbname, redis_url, queue_name, ["terminate"],
              terminate=lambda: terminate_backends(POSTGRES_URL, dbname),
              stop=None, start=None, label="connections killed")


def test_server_restarted(tmp_path, redis_url, queue_name):
    cluster = PrivateCluster()
    try:
        cluster.start()
        dbname = f"tj_{uuid.uuid4().hex[:12]}"
        url = cluster.create_database(dbname)
        kinds = ["terminate", "restart"] if FULL else ["restart"]
        _scenario(tmp_path, url, dbname, redis_url, queue_name, kinds,
                  terminate=lambda: terminate_backends(cluster.url(), dbname),
                  stop=cluster.stop, start=cluster.start, label="server restarted")
    finally:
        cluster.destroy()
