"""The Procfile's processes for a fault test, and what the tests read back.

``Stack`` starts ``gunicorn web:app``, ``dramatiq MODULE`` and ``python scheduler.py`` with
one environment (a database and a Redis queue of the test's own), keeps their logs in the
test's ``tmp_path`` and stops them all at the end. ``Sql`` reads the system tables with a
plain psycopg connection (no engine code). ``Loader`` sends events over HTTP at a steady
rate and remembers what each answer said. ``Supervisor`` restarts workers that die, as a
process manager would (R2, R9: steps that kill their own process).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests

from procs import ROOT, Proc, free_port, process_env, start_worker, wait_until
from webhelpers import EVENT_KEY, PASSWORD, live_env

FINAL = ("completed", "failed", "cancelled")


class NotRecovered(AssertionError):
    """Work did not resume within the bound after a fault (R4's known failure on main)."""


class RetriedForever(AssertionError):
    """A step ran more often than ``1 + retries`` (R9's known failure on main)."""


def chaos_env(postgres_url: str, redis_url: str, queue_name: str, *,
              functions: str = "chaos.funcs", **extra) -> dict[str, str]:
    """Production settings as the Procfile runs them, with short test timings by default."""
    env = live_env(postgres_url, redis_url, queue_name, TENGO_FUNCTIONS=functions,
                   TENGO_LEASE_TTL="2s", TENGO_REDELIVER_AFTER="1s", TENGO_SWEEP_INTERVAL="500ms",
                   TENGO_POLL_INTERVAL="100ms", TENGO_RETRY_BASE="50ms", TENGO_RETRY_MAX="300ms")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def group_pids(pgid: int) -> list[int]:
    """Every process in the process group ``pgid`` (dramatiq forks its worker processes)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class Stack:
    def __init__(self, tmp_path: Path, env: dict[str, str], *, module: str | None = None):
        self.tmp_path = tmp_path
        self.env = env
        self.module = module or env["TENGO_FUNCTIONS"]
        self.procs: list[Proc] = []
        self.base: str | None = None
        self._counts: Counter = Counter()

    def _log(self, kind: str) -> Path:
        self._counts[kind] += 1
        return self.tmp_path / f"{kind}{self._counts[kind]}.log"

    # -- processes ------------------------------------------------------------------------
    def web(self, *, workers: int = 1, port: int | None = None, **env) -> Proc:
        port = port or free_port()
        args = [sys.executable, "-m", "gunicorn", "web:app", "-b", f"127.0.0.1:{port}",
                "-w", str(workers), "--access-logfile", "-", "--error-logfile", "-",
                "--log-level", "info", "--graceful-timeout", "5", "--timeout", "120"]
        proc = Proc(args, process_env(**{**self.env, **env}), self._log("web"))
        self.procs.append(proc)
        self.base = f"http://127.0.0.1:{port}"

        def healthy():
            if not proc.alive():
                raise AssertionError(f"gunicorn exited:\n{proc.log()[-3000:]}")
            return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200

        wait_until(healthy, timeout=60, interval=0.1, message=f"gunicorn on {self.base}")
        return proc

    def worker(self, *, threads: int = 8, processes: int = 1, prefix: list[str] | None = None,
               **env) -> Proc:
        if prefix:
            args = [*prefix, sys.executable, "-m", "dramatiq", self.module, "-p", str(processes),
                    "-t", str(threads)]
            proc = Proc(args, process_env(**{**self.env, **env}), self._log("worker"))
        else:
            proc = start_worker(self.module, self._log("worker"), processes=processes,
                                threads=threads, **{**self.env, **env})
        self.procs.append(proc)
        return proc

    def wait_worker_ready(self, proc: Proc, timeout: float = 60) -> list[int]:
        """The worker's forked processes, once dramatiq says it is ready."""
        wait_until(lambda: "is ready for action" in proc.log() or not proc.alive(),
                   timeout=timeout, interval=0.1, message="the worker to start")
        assert proc.alive(), proc.log()[-3000:]
        return [p for p in group_pids(proc.pid) if p != proc.pid]

    def scheduler(self, *extra: str, **env) -> Proc:
        proc = Proc([sys.executable, str(ROOT / "scheduler.py"), *extra],
                    process_env(**{**self.env, **env}), self._log("scheduler"))
        self.procs.append(proc)
        wait_until(lambda: "scheduler started" in proc.log() or not proc.alive(), timeout=60,
                   interval=0.1, message="the scheduler to start")
        assert proc.alive(), proc.log()[-3000:]
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            with contextlib.suppress(Exception):
                proc.stop()

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {p.log_path.name} (pid {p.pid}, {'alive' if p.alive() else 'exited'})"
                         f"\n{p.log()[-chars:]}" for p in self.procs)

    # -- HTTP -----------------------------------------------------------------------------
    def send(self, events, *, timeout: float = 30) -> list[str]:
        r = requests.post(f"{self.base}/e/{EVENT_KEY}", json=events, timeout=timeout)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["ids"]

    def api(self, path: str, **params):
        r = requests.get(f"{self.base}{path}", params=params,
                         headers={"Authorization": f"Bearer {PASSWORD}"}, timeout=10)
        r.raise_for_status()
        return r.json()


class Sql:
    """Read-only questions to the system tables, over a plain psycopg connection."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.Connection | None = None

    def rows(self, sql: str, params=()) -> list[tuple]:
        for attempt in range(30):  # the test's own connection survives the faults it injects
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
                if attempt == 29:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def scalar(self, sql: str, params=()):
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def status_counts(self, function_id: str | None = None) -> dict[str, int]:
        where, params = ("WHERE function_id = %s", (function_id,)) if function_id else ("", ())
        return dict(self.rows(f"SELECT status, count(*) FROM tj_runs {where} GROUP BY status",
                              params))

    def unfinished(self, function_id: str | None = None) -> int:
        where = "AND function_id = %s" if function_id else ""
        return self.scalar(f"SELECT count(*) FROM tj_runs WHERE status NOT IN "
                           f"('completed','failed','cancelled') {where}",
                           (function_id,) if function_id else ())

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


def wait_all_final(sql: Sql, *, expected: int, timeout: float, function_id: str | None = None,
                   stack: Stack | None = None, interval: float = 0.5) -> dict[str, int]:
    """Wait until ``expected`` runs exist and none is unfinished; returns the status counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = sql.status_counts(function_id)
        total = sum(counts.values())
        done = sum(v for k, v in counts.items() if k in FINAL)
        if total >= expected and done == total:
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:.0f}s: {counts} (expected {expected} final runs)\n"
                + (stack.logs() if stack else ""))
        time.sleep(interval)


# -- what the steps wrote -------------------------------------------------------------------
def check_no_committed_step_reran(sql: Sql) -> dict:
    """The precise form of "a committed step never ran again", from ``chaos_effects``.

    - no execution of a step body saw that step already committed in ``tj_steps``;
    - no execution started after its step's checkpoint (``ended_at``, same machine clock);
    - every committed output carries the token of one recorded execution of that step.
    Returns figures for the report.
    """
    saw = sql.rows("SELECT run_id, step_key, pid, at_ms FROM chaos_effects "
                   "WHERE saw_committed AND kind = 'run' LIMIT 20")
    assert not saw, f"a step body ran although its checkpoint was committed: {saw}"
    late = sql.rows(
        "SELECT e.run_id, e.step_key, e.at_ms, s.ended_at FROM chaos_effects e "
        "JOIN tj_steps s ON s.run_id = e.run_id AND s.key = e.step_key "
        "WHERE e.kind = 'run' AND s.status = 'completed' AND e.at_ms > s.ended_at LIMIT 20")
    assert not late, f"executions that started after their step's checkpoint: {late}"
    orphans = sql.rows(
        "SELECT s.run_id, s.key FROM tj_steps s WHERE s.kind = 'run' AND s.status = 'completed' "
        "AND s.output LIKE '%%\"token\"%%' AND NOT EXISTS (SELECT 1 FROM chaos_effects e "
        "WHERE e.run_id = s.run_id AND e.step_key = s.key "
        "AND e.token = (s.output::json ->> 'token')) LIMIT 20")
    assert not orphans, f"committed outputs that no recorded execution produced: {orphans}"
    executions = sql.scalar("SELECT count(*) FROM chaos_effects WHERE kind = 'run'")
    distinct = sql.scalar("SELECT count(*) FROM (SELECT DISTINCT run_id, step_key "
                          "FROM chaos_effects WHERE kind = 'run') d")
    return {"executions": executions, "steps": distinct, "re_executions": executions - distinct}


class Loader(threading.Thread):
    """Sends batches of events to the intake at about ``rate`` events/s until ``stop()``,
    recording every answer: ids accepted with 2xx, statuses of the others."""

    def __init__(self, base: str, make_events, *, rate: float, batch: int = 5,
                 limit: int | None = None, timeout: float = 15):
        super().__init__(name="chaos-loader", daemon=True)
        self.base = base
        self.make_events = make_events  # (start index, count) -> list of event dicts
        self.interval = batch / rate
        self.batch = batch
        self.limit = limit
        self.timeout = timeout
        self.accepted: list[str] = []
        self.statuses: Counter = Counter()
        self.sent = 0
        self._halt = threading.Event()
        self.session = requests.Session()

    def stop(self) -> None:
        self._halt.set()
        self.join(self.timeout + 5)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            if self.limit is not None and self.sent >= self.limit:
                return
            n = self.batch if self.limit is None else min(self.batch, self.limit - self.sent)
            events = self.make_events(self.sent, n)
            try:
                r = self.session.post(f"{self.base}/e/{EVENT_KEY}", json=events,
                                      timeout=self.timeout)
                self.statuses[r.status_code] += 1
                if 200 <= r.status_code < 300:
                    self.accepted.extend(r.json()["ids"])
                    self.sent += n
            except requests.RequestException as exc:
                self.statuses[type(exc).__name__] += 1
            next_at += self.interval
            self._halt.wait(max(0.0, next_at - time.monotonic()))


class Supervisor(threading.Thread):
    """Restarts a worker when it exits, as a process manager does (``restarts`` counts them)."""

    def __init__(self, stack: Stack, **worker_kwargs):
        super().__init__(name="chaos-supervisor", daemon=True)
        self.stack = stack
        self.worker_kwargs = worker_kwargs
        self.proc = stack.worker(**worker_kwargs)
        self.restarts = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.1):
            if not self.proc.alive():
                self.proc.stop()  # reap the group
                self.restarts += 1
                self.proc = self.stack.worker(**self.worker_kwargs)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def report(test: str, **figures) -> None:
    """One line a long run's log can be grepped for (``CHAOS-RESULT``), also appended to
    ``$CHAOS_RESULTS`` when set."""
    line = json.dumps({"test": test, **figures}, default=str)
    print(f"CHAOS-RESULT {line}")
    path = os.environ.get("CHAOS_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
