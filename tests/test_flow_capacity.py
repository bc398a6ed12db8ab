"""Capacity options — concurrency, throttle, priority, fair keys — checked from outside:
which runs execute at once (recorded by the steps themselves), when runs start, in which
order a backlog drains, and what the API shows. On SQLite and PostgreSQL.

A run holding its slot "while another worker tries" is simulated in one thread: the
step of the first run calls the executor on the other runs, exactly as a second worker
would, and sees what they do."""

from __future__ import annotations

import pytest

from tengo_jobs import RunStatus
from tengo_jobs.errors import ConfigurationError


def _overlap(log: list[tuple[str, str]]) -> int:
    inside, most = 0, 0
    for what, _ in log:
        inside += 1 if what == "enter" else -1
        most = max(most, inside)
    return most


def _send_apart(tester, events):
    """One event per millisecond: the runs' creation order is the events' order."""
    for event in events:
        tester.send(event)
        tester.clock.advance(1)


def _drive_others(backend):
    """Inside the first run's step: every other runnable run is tried, as by other workers."""
    tried = {}
    for run_id in backend.store.timers.runnable(backend.clock.now()):
        tried[run_id] = backend.executor.execute(run_id)
    return tried


# -- declaration ---------------------------------------------------------------------------------
@pytest.mark.parametrize("options, words", [
    ({"concurrency": 0}, ["'f'", "concurrency", "1 to 100000"]),
    ({"concurrency": [{"limit": 1}, {"limit": 2, "key": "event.data.a"}, {"limit": 3}]},
     ["'f'", "concurrency", "1 to 2"]),
    ({"concurrency": {"limit": 2, "key": "event.data.("}}, ["'f'", "concurrency.key"]),
    ({"concurrency": {"limit": 2, "scope": "env"}}, ["'f'", "scope 'env' needs a key"]),
    ({"concurrency": {"limit": 2, "scope": "account", "key": "event.data.a"}}, ["concurrency.scope"]),
    ({"throttle": {"limit": 1, "period": "500ms"}}, ["'f'", "throttle.period", "1s to 7d"]),
    ({"throttle": {"limit": 1}}, ["throttle.period is required"]),
    ({"throttle": {"limit": 1, "period": "1s", "burst": 0}}, ["throttle.burst"]),
    ({"priority": {"run": 5}}, ["'f'", "priority.run"]),
    ({"priority": "event.data.x"}, ["priority", "-600", "600"]),
])
def test_bad_capacity_options_are_refused_at_declaration_naming_function_and_option(
        jobs, options, words):
    with pytest.raises(ConfigurationError) as err:
        jobs.function("f", event="e", **options)(lambda ctx, step: None)
    for word in words:
        assert word in str(err.value)


def test_an_unknown_option_is_refused_by_name(jobs):
    with pytest.raises(ConfigurationError, match="unknown option 'concurency'"):
        jobs.function("f", event="e", concurency=1)(lambda c, s: None)


# -- concurrency -----------------------------------------------------------------------------------
def test_runs_over_the_limit_wait_in_order_and_all_complete(backend, jobs, tester):
    log, tried = [], {}

    @jobs.function("limited", event="go", concurrency=1, retries=0)
    def limited(ctx, step):
        def work():
            log.append(("enter", ctx.event.data["n"]))
            if ctx.event.data["n"] == 0:
                tried.update(_drive_others(backend))
            log.append(("exit", ctx.event.data["n"]))
            return ctx.event.data["n"]
        return step.run("work", work)

    _send_apart(tester, [{"name": "go", "data": {"n": n}} for n in range(4)])
    first = backend.store.timers.runnable(backend.clock.now())[0]
    assert backend.executor.execute(first) == "completed", tester.run(first).error
    assert sorted(tried.values()) == ["waiting"] * 3
    runs = tester.run_until_idle()
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 4
    assert _overlap(log) == 1
    assert [n for what, n in log if what == "enter"] == [0, 1, 2, 3]  # FIFO


def test_a_waiting_run_is_shown_as_waiting_for_concurrency_and_not_busy_polled(
        backend, jobs, tester):
    seen = {}

    @jobs.function("limited", event="go", concurrency=1, retries=0)
    def limited(ctx, step):
        def work():
            if ctx.event.data["n"] == 0:
                _drive_others(backend)
                now = backend.clock.now()
                seen["runnable"] = [r for r in backend.store.timers.runnable(now + 3_600_000)
                                    if r != ctx.run_id]
                seen["fns"] = backend.control.functions()
            return 1
        return step.run("work", work)

    _send_apart(tester, [{"name": "go", "data": {"n": n}} for n in range(3)])
    backend.executor.execute(backend.store.timers.runnable(backend.clock.now())[0])
    assert seen["runnable"] == []  # nothing due: the waiting runs wait for a release, not a clock
    [fn] = [f for f in seen["fns"] if f["id"] == "limited"]
    [limit] = fn["limits"]
    assert limit["limit"] == 1 and limit["slots_in_use"] == 1 and limit["waiting"] == 2
    assert limit["keys"] == [{"key": None, "limit": 1, "in_use": 1, "waiting": 2,
                              "at_capacity": True}]
    assert fn["flow_control"]["concurrency"] == [{"limit": 1, "key": None, "scope": "fn"}]
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 3


def test_a_keyed_limit_holds_per_key_value_only(backend, jobs, tester):
    tried = {}

    @jobs.function("per-customer", event="go", retries=0,
                   concurrency={"limit": 1, "key": "event.data.customer"})
    def per_customer(ctx, step):
        def work():
            if ctx.event.data["n"] == 0:
                for run_id in backend.store.timers.runnable(backend.clock.now()):
                    tried[run_id] = backend.executor.execute(run_id)
            return ctx.event.data["customer"]
        return step.run("work", work)

    _send_apart(tester, [{"name": "go", "data": {"n": 0, "customer": "a"}},
                         {"name": "go", "data": {"n": 1, "customer": "a"}},
                         {"name": "go", "data": {"n": 2, "customer": "b"}}])
    first = backend.store.timers.runnable(backend.clock.now())[0]
    backend.executor.execute(first)
    outcome = {tester.output(tester.run(r)) if tester.run(r).status == RunStatus.COMPLETED
               else "a-waiting": v for r, v in tried.items()}
    assert outcome == {"b": "completed", "a-waiting": "waiting"}
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 3


def test_sleeping_runs_hold_no_slot(jobs, tester):
    order = []

    @jobs.function("nap", event="go", concurrency=1, retries=0)
    def nap(ctx, step):
        n = ctx.event.data["n"]
        step.run("before", lambda: order.append(f"before-{n}"))
        step.sleep("nap", "1m")
        step.run("after", lambda: order.append(f"after-{n}"))

    _send_apart(tester, [{"name": "go", "data": {"n": n}} for n in range(2)])
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 2
    # the second run started while the first slept: one slot, two runs in progress
    assert order.index("before-1") < order.index("after-0")


def test_priority_orders_a_backlog(backend, jobs, tester):
    log = []

    @jobs.function("ranked", event="go", concurrency=1, retries=0,
                   priority={"run": "event.data.vip ? 120 : (event.data.late ? -60 : 0)"})
    def ranked(ctx, step):
        def work():
            log.append(ctx.event.data["n"])
            if ctx.event.data["n"] == 0:
                _drive_others(backend)
        step.run("work", work)

    flags = [(False, False), (False, True), (False, False), (True, False), (False, False)]
    _send_apart(tester, [{"name": "go", "data": {"n": n, "vip": vip, "late": late}}
                         for n, (vip, late) in enumerate(flags)])
    backend.executor.execute(backend.store.timers.runnable(backend.clock.now())[0])
    tester.run_until_idle()
    assert log == [0, 3, 2, 4, 1]


def test_fair_keys_serve_a_cold_key_before_a_hot_keys_backlog_drains(backend, jobs, tester):
    log = []

    @jobs.function("fair", event="go", retries=0,
                   concurrency=[{"limit": 1}, {"limit": 5, "key": "event.data.customer"}])
    def fair(ctx, step):
        def work():
            log.append(ctx.event.data["customer"])
            if len(log) == 1:
                _drive_others(backend)
        step.run("work", work)

    _send_apart(tester, [{"name": "go", "data": {"customer": "hot"}} for _ in range(12)]
                + [{"name": "go", "data": {"customer": "cold"}}])
    backend.executor.execute(backend.store.timers.runnable(backend.clock.now())[0])
    tester.run_until_idle()
    assert len(log) == 13
    assert log.index("cold") <= 2  # not 12th: served in turn, not behind the hot backlog


def test_a_killed_workers_slot_comes_back_within_the_lease_ttl(backend, jobs, tester):
    @jobs.function("limited", event="go", concurrency=1, retries=3)
    def limited(ctx, step):
        return step.run("work", lambda: ctx.event.data["n"])

    _send_apart(tester, [{"name": "go", "data": {"n": n}} for n in range(2)])
    first, second = backend.store.timers.runnable(backend.clock.now())
    now = backend.clock.now()
    # a worker acquires the first run, takes its slot, and is SIGKILLed
    assert backend.store.runs.acquire(first, "dead-worker", now) is not None
    ttl = backend.settings.lease_ttl_ms
    assert backend.store.slots.take(first, "dead-worker", [("c:fn:limited", 1)], now=now,
                                    expires_at=now + ttl, queue_at=now) == (None, [])
    assert backend.executor.execute(second) == "waiting"
    backend.timekeeper.sweep(now=now + ttl // 2)
    assert backend.store.timers.runnable(now + ttl // 2) == []
    backend.clock.set(now + ttl + 1)
    backend.timekeeper.sweep(now=now + ttl + 1)
    assert second in backend.store.timers.runnable(now + ttl + 1)
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 2


# -- throttle ------------------------------------------------------------------------------------
def test_throttle_spaces_starts_by_gcra_first_come_first_started(jobs, tester):
    @jobs.function("paced", event="go", retries=0, throttle={"limit": 2, "period": "6s"})
    def paced(ctx, step):
        return ctx.event.data["n"]

    t0 = tester.clock.now()
    tester.send([{"name": "go", "data": {"n": n}} for n in range(6)])
    runs = sorted(tester.run_until_idle(), key=lambda r: tester.output(r))
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 6
    # Inngest's example: limit + burst (3) start at once, then one every period / limit (3 s)
    assert [r.started_at - t0 for r in runs] == [0, 0, 0, 3_000, 6_000, 9_000]


def test_throttle_is_per_key(jobs, tester):
    @jobs.function("paced", event="go", retries=0,
                   throttle={"limit": 1, "period": "10s", "key": "event.data.user"})
    def paced(ctx, step):
        return ctx.event.data["n"]

    t0 = tester.clock.now()
    tester.send([{"name": "go", "data": {"n": 0, "user": "a"}},
                 {"name": "go", "data": {"n": 1, "user": "a"}},
                 {"name": "go", "data": {"n": 2, "user": "a"}},
                 {"name": "go", "data": {"n": 3, "user": "b"}}])
    runs = sorted(tester.run_until_idle(), key=lambda r: tester.output(r))
    assert [r.started_at - t0 for r in runs] == [0, 0, 10_000, 0]
