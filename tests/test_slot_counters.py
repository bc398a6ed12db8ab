"""The slot counters of concurrency keys (``tj_slot_keys.used``, ``waiting``, ``solo``;
store/slots.py), on SQLite and PostgreSQL: the counter follows the slots held, the acquire
takes the slot of a function's only function-wide limit and the executor gives it back when
the deployed limit differs, and a counter that went wrong behind the store's back is set
right by the next take that finds the key full — never by letting a limit be exceeded."""

from __future__ import annotations

from tengo_jobs import RunStatus

KEY = "c:fn:limited"


def _key_row(backend, key=KEY):
    return backend.store.db.execute_sql(
        'SELECT "capacity", "used", "waiting", "solo" FROM "tj_slot_keys" WHERE "scope_key" = ?'
        .replace("?", "%s" if backend.store.dialect.postgres else "?"), (key,)).fetchone()


def _set_key(backend, column: str, value: int, key=KEY):
    mark = "%s" if backend.store.dialect.postgres else "?"
    backend.store.db.execute_sql(
        f'UPDATE "tj_slot_keys" SET "{column}" = {mark} WHERE "scope_key" = {mark}', (value, key))


def _send_apart(tester, n):
    for i in range(n):
        tester.send({"name": "go", "data": {"n": i}})
        tester.clock.advance(1)


def test_the_counter_follows_the_slots_and_the_acquire_takes_a_sole_limits_slot(
        backend, jobs, tester):
    seen = []

    @jobs.function("limited", event="go", concurrency=1000, retries=0)
    def limited(ctx, step):
        return step.run("work", lambda: seen.append(_key_row(backend)[1]) or ctx.event.data["n"])

    _send_apart(tester, 3)
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 3
    assert seen == [1, 1, 1]  # one slot held while each run executed
    assert _key_row(backend) == (1000, 0, 0, 1)  # all given back; the only limit: solo

    _send_apart(tester, 1)
    [run_id] = backend.store.timers.runnable(backend.clock.now())
    acquired = backend.store.runs.acquire(run_id, "w", backend.clock.now())
    assert acquired.slot == (KEY, 1000)  # taken by the acquire, no statement of its own
    assert _key_row(backend)[1] == 1


def test_a_slot_the_acquire_took_under_a_stale_limit_goes_back_and_the_run_waits(
        backend, jobs, tester):
    log = []

    @jobs.function("limited", event="go", concurrency=1, retries=0)
    def limited(ctx, step):
        def work():
            log.append(ctx.event.data["n"])
            if ctx.event.data["n"] == 0:
                _set_key(backend, "capacity", 1000)  # the row still says the old limit
                log.append(backend.executor.execute(second))
        return step.run("work", work)

    _send_apart(tester, 2)
    first, second = backend.store.timers.runnable(backend.clock.now())
    assert backend.executor.execute(first) == "completed"
    assert log[:2] == [0, "waiting"]  # the deployed limit (1) decided, not the row's 1000
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 2
    assert log == [0, "waiting", 1]
    assert _key_row(backend)[:3] == (1, 0, 0)


def test_a_counter_gone_wrong_is_set_right_when_the_key_looks_full(backend, jobs, tester):
    @jobs.function("limited", event="go", concurrency=2, retries=0)
    def limited(ctx, step):
        return step.run("work", lambda: _key_row(backend)[1])

    _send_apart(tester, 1)
    tester.run_until_idle()
    _set_key(backend, "used", 2)  # two slots counted that no run holds
    _send_apart(tester, 1)
    runs = tester.run_until_idle()
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 2
    assert tester.output(runs[-1]) == 1  # counted again from the slots: only its own
    assert _key_row(backend)[1] == 0


def test_a_give_back_wakes_a_waiter_and_clears_the_flag_when_none_is_left(
        backend, jobs, tester):
    flags = []

    @jobs.function("limited", event="go", concurrency=1, retries=0)
    def limited(ctx, step):
        def work():
            if ctx.event.data["n"] == 0:
                assert backend.executor.execute(second) == "waiting"
            flags.append(_key_row(backend)[2])
        return step.run("work", work)

    _send_apart(tester, 2)
    first, second = backend.store.timers.runnable(backend.clock.now())
    backend.executor.execute(first)
    assert second in backend.store.timers.runnable(backend.clock.now())  # woken by the give-back
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 2
    assert flags == [1, 0]  # set while the second waited; cleared by the wake that took it
    assert _key_row(backend)[1:3] == (0, 0)


def test_a_limit_removed_by_a_deploy_gives_the_acquires_slot_back_and_stops_it(
        backend, jobs, tester):
    @jobs.function("free", event="go", retries=0)
    def free(ctx, step):
        return step.run("work", lambda: _key_row(backend, "c:fn:free")[1])

    mark = "%s" if backend.store.dialect.postgres else "?"
    backend.store.db.execute_sql(  # left by the code deployed before: concurrency=10
        f'INSERT INTO "tj_slot_keys" ("scope_key", "capacity", "served", "used", "waiting", '
        f'"solo") VALUES ({mark}, 10, 0, 0, 0, 1)', ("c:fn:free",))
    _send_apart(tester, 2)
    runs = tester.run_until_idle()
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 2
    assert [tester.output(r) for r in runs] == [0, 0]  # no slot held while executing
    assert _key_row(backend, "c:fn:free")[1:] == (0, 0, 0)  # given back; not solo any more
