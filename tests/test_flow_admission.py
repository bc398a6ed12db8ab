"""Admission-time flow control on both databases: ``idempotency``, ``rate_limit``,
``singleton``, ``debounce`` and ``batch_events`` — what starts, what is skipped and why,
what is folded into which run — checked through rows, statuses and ``get_event`` (the
API's answer), with the fake clock."""

from __future__ import annotations

import pytest

from tengo_jobs.errors import ConfigurationError
from tengo_jobs.store.schema import RunRow, RunStatus

SEC = 1_000


def _flow(backend, event_id):
    return [(f["function_id"], f["status"], f["reason"], f["run_id"])
            for f in backend.store.queries.get_event(event_id)["flow_control"]]


def _runs(fn_id):
    return list(RunRow.select().where(RunRow.function_id == fn_id).order_by(RunRow.created_at,
                                                                             RunRow.id))


# -- idempotency --------------------------------------------------------------------------------
def test_idempotency_starts_one_run_per_key_in_24h(jobs, tester, backend):
    @jobs.function("charge", event="order.paid", idempotency="event.data.orderId")
    def charge(ctx, step):
        return ctx.event.data["orderId"]

    first = tester.send({"name": "order.paid", "data": {"orderId": "o1"}})[0]
    again = tester.send({"name": "order.paid", "data": {"orderId": "o1"}})[0]
    other = tester.send({"name": "order.paid", "data": {"orderId": "o2"}})[0]
    tester.run_until_idle(advance_time=False)
    runs = _runs("charge")
    assert sorted(tester.output(r) for r in runs) == ["o1", "o2"]
    assert _flow(backend, again) == [("charge", "skipped", "idempotency", None)]
    assert _flow(backend, first) == [] and _flow(backend, other) == []
    assert backend.store.queries.get_event(again)["runs"] == []

    tester.clock.advance(24 * 3_600 * SEC + 1)  # the window is over: the key starts a run again
    tester.send({"name": "order.paid", "data": {"orderId": "o1"}})
    tester.run_until_idle(advance_time=False)
    assert len(_runs("charge")) == 3


# -- rate limit -----------------------------------------------------------------------------------
def test_rate_limit_skips_events_over_the_limit_per_key_and_refills(jobs, tester, backend):
    @jobs.function("notify", event="user.pinged",
                   rate_limit={"limit": 2, "period": "1m", "key": "event.data.userId"})
    def notify(ctx, step):
        return ctx.event.data["n"]

    ids = [tester.send({"name": "user.pinged", "data": {"userId": "u1", "n": n}})[0]
           for n in range(4)]
    tester.send({"name": "user.pinged", "data": {"userId": "u2", "n": 9}})
    tester.run_until_idle(advance_time=False)
    assert sorted(tester.output(r) for r in _runs("notify")) == [0, 1, 9]
    assert [_flow(backend, i) for i in ids[2:]] == [[("notify", "skipped", "rate_limit", None)]] * 2

    tester.clock.advance(30 * SEC)  # GCRA: one start back every period / limit
    a = tester.send({"name": "user.pinged", "data": {"userId": "u1", "n": 4}})[0]
    b = tester.send({"name": "user.pinged", "data": {"userId": "u1", "n": 5}})[0]
    tester.run_until_idle(advance_time=False)
    assert _flow(backend, a) == [] and _flow(backend, b)[0][2] == "rate_limit"
    assert len(_runs("notify")) == 4


# -- an admission rule and a throttle together ------------------------------------------------------
@pytest.mark.parametrize("rule", [
    {"rate_limit": {"limit": 100, "period": "1m"}},
    {"idempotency": "event.data.n"},
    {"singleton": {"key": "event.data.n", "mode": "skip"}},
], ids=["rate_limit", "idempotency", "singleton"])
def test_a_throttle_delays_the_runs_an_admission_rule_lets_start(jobs, tester, backend, rule):
    @jobs.function("paced", event="go", retries=0, throttle={"limit": 1, "period": "10s"},
                   **rule)
    def paced(ctx, step):
        return ctx.event.data["n"]

    t0 = tester.clock.now()
    tester.send([{"name": "go", "data": {"n": n}} for n in range(4)])
    runs = sorted(tester.run_until_idle(), key=lambda r: tester.output(r))
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 4
    # limit + burst (2) start at once, then one every period / limit (10 s): none skipped
    assert [r.started_at - t0 for r in runs] == [0, 0, 10_000, 20_000]


# -- singleton ------------------------------------------------------------------------------------
def test_singleton_skip_drops_events_while_a_run_of_the_key_is_unfinished(jobs, tester, backend):
    @jobs.function("sync", event="account.changed",
                   singleton={"key": "event.data.account", "mode": "skip"})
    def sync(ctx, step):
        step.sleep("slow", "10s")
        return ctx.event.data["n"]

    tester.send({"name": "account.changed", "data": {"account": "a", "n": 1}})
    tester.run_until_idle(advance_time=False)  # asleep: still in progress
    [holder] = _runs("sync")
    dropped = tester.send({"name": "account.changed", "data": {"account": "a", "n": 2}})[0]
    tester.send({"name": "account.changed", "data": {"account": "b", "n": 3}})
    assert _flow(backend, dropped) == [("sync", "skipped", "singleton", holder.id)]
    tester.run_until_idle()
    assert sorted(tester.output(r) for r in _runs("sync")) == [1, 3]
    tester.send({"name": "account.changed", "data": {"account": "a", "n": 4}})  # holder ended
    tester.run_until_idle()
    assert sorted(tester.output(r) for r in _runs("sync")) == [1, 3, 4]


def test_singleton_cancel_cancels_the_running_one_and_starts_the_new_one(jobs, tester, backend):
    @jobs.function("rebuild", event="index.stale", singleton={"mode": "cancel"})
    def rebuild(ctx, step):
        step.sleep("slow", "10s")
        return ctx.event.data["n"]

    tester.send({"name": "index.stale", "data": {"n": 1}})
    tester.run_until_idle(advance_time=False)
    [old] = _runs("rebuild")
    tester.send({"name": "index.stale", "data": {"n": 2}})
    tester.run_until_idle()
    [new] = [r for r in _runs("rebuild") if r.id != old.id]
    old = tester.run(old.id)
    assert old.status == RunStatus.CANCELLED
    assert new.status == RunStatus.COMPLETED and tester.output(new) == 2


# -- debounce -------------------------------------------------------------------------------------
def test_debounce_starts_one_run_period_after_the_last_event_with_it(jobs, tester, backend):
    @jobs.function("reindex", event="doc.edited",
                   debounce={"period": "10s", "key": "event.data.doc"})
    def reindex(ctx, step):
        return ctx.event.data["rev"]

    t0 = tester.clock.now()
    ids = []
    for rev in range(3):
        ids.append(tester.send({"name": "doc.edited", "data": {"doc": "d1", "rev": rev}})[0])
        tester.clock.advance(5 * SEC)
        tester.run_until_idle(advance_time=False)
        assert all(r.status == RunStatus.QUEUED for r in _runs("reindex"))
    tester.send({"name": "doc.edited", "data": {"doc": "d2", "rev": 7}})
    [run, other] = _runs("reindex")
    assert _flow(backend, ids[0]) == [("reindex", "debounced", None, run.id)]
    assert _flow(backend, ids[1]) == [("reindex", "debounced", None, run.id)]
    assert [r["id"] for r in backend.store.queries.get_event(ids[2])["runs"]] == [run.id]
    tester.run_until_idle()
    run = tester.run(run.id)
    assert tester.output(run) == 2
    assert run.started_at == t0 + 10 * SEC + 10 * SEC  # 10 s after the last event (sent at +10 s)
    assert tester.output(tester.run(other.id)) == 7


def test_debounce_timeout_bounds_the_delay_from_the_first_event(jobs, tester):
    @jobs.function("digest", event="msg.posted", debounce={"period": "10s", "timeout": "15s"})
    def digest(ctx, step):
        return ctx.event.data["n"]

    t0 = tester.clock.now()
    for n in range(5):  # an event every 5 s: without the timeout it would never start
        tester.send({"name": "msg.posted", "data": {"n": n}})
        tester.clock.advance(5 * SEC)
        tester.run_until_idle(advance_time=False)
    first = _runs("digest")[0]
    assert first.status == RunStatus.COMPLETED
    assert first.started_at == t0 + 15 * SEC and tester.output(first) == 2  # sent at +10 s


# -- batches --------------------------------------------------------------------------------------
def test_a_batch_starts_when_full_with_its_events_in_order(jobs, tester, backend):
    @jobs.function("bulk-insert", event="row.added",
                   batch_events={"max_size": 3, "timeout": "30s", "key": "event.data.table"})
    def bulk_insert(ctx, step):
        return [e.data["n"] for e in ctx.events]

    ids = [tester.send({"name": "row.added", "data": {"table": "t", "n": n}})[0] for n in range(4)]
    tester.send({"name": "row.added", "data": {"table": "u", "n": 9}})
    tester.run_until_idle(advance_time=False)
    runs = _runs("bulk-insert")
    full = [r for r in runs if r.status == RunStatus.COMPLETED]
    assert [tester.output(r) for r in full] == [[0, 1, 2]]
    assert _flow(backend, ids[1]) == [("bulk-insert", "batched", None, full[0].id)]
    assert _flow(backend, ids[2]) == [("bulk-insert", "batched", None, full[0].id)]
    t = tester.clock.now()
    tester.run_until_idle()  # the other batches by their timeout
    by_output = sorted(tester.output(r) for r in _runs("bulk-insert"))
    assert by_output == [[0, 1, 2], [3], [9]]
    assert all(r.started_at <= t + 30 * SEC for r in _runs("bulk-insert"))


def test_batch_if_exp_leaves_other_events_to_runs_of_their_own(jobs, tester):
    @jobs.function("collect", event="item",
                   batch_events={"max_size": 10, "timeout": "5s", "if_exp": "event.data.bulk"})
    def collect(ctx, step):
        return len(ctx.events)

    for bulk in (True, True, False):
        tester.send({"name": "item", "data": {"bulk": bulk}})
    tester.run_until_idle()
    assert sorted(tester.output(r) for r in _runs("collect")) == [1, 2]


# -- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("options, words", [
    ({"rate_limit": {"limit": 1, "period": "500ms"}}, ["rate_limit", "from 1s to 1d"]),
    ({"rate_limit": {"limit": 0, "period": "1m"}}, ["rate_limit", "limit"]),
    ({"debounce": {"period": "8d"}}, ["debounce", "from 1s to 7d"]),
    ({"batch_events": {"max_size": 101, "timeout": "1s"}}, ["batch_events", "1 to 100"]),
    ({"batch_events": {"max_size": 5}}, ["batch_events", "'timeout' is required"]),
    ({"singleton": {"mode": "queue"}}, ["singleton", "skip, cancel"]),
    ({"idempotency": "event.data.x =="}, ["idempotency", "^"]),
    ({"rate_limit": {"limit": 1, "period": "1m", "key": "event.data."}}, ["rate_limit.key"]),
    ({"debounce": {"period": "1s", "wait": 1}}, ["debounce", "unknown field 'wait'"]),
])
def test_bad_options_are_refused_at_declaration_naming_function_and_option(jobs, options, words):
    with pytest.raises(ConfigurationError) as info:
        jobs.function("bad-fn", event="x", **options)(lambda ctx, step: None)
    message = str(info.value)
    assert "'bad-fn'" in message
    for word in words:
        assert word in message


def test_a_batch_function_refuses_the_other_admission_rules(jobs):
    with pytest.raises(ConfigurationError, match="batch_events"):
        jobs.function("fn", event="x", batch_events={"max_size": 2, "timeout": "10s"},
                      idempotency="event.data.id")(lambda ctx, step: None)


def test_functions_overview_shows_the_settings(jobs):
    fn = jobs.function("shown", event="x", rate_limit={"limit": 3, "period": "1h"},
                       idempotency="event.data.id")(lambda ctx, step: None)
    assert fn.describe()["flow_control"] == {
        "idempotency": "event.data.id",
        "rate_limit": {"limit": 3, "period_ms": 3_600_000, "key": None}}


# -- concurrent intakes ---------------------------------------------------------------------------
def test_concurrent_intakes_hold_the_limits_on_the_database(jobs, backend):
    """Eight threads (eight connections) send at once: the key rows' locks decide, not a
    process's memory."""
    import threading

    @jobs.function("unique", event="hit", idempotency="event.data.k")
    def unique(ctx, step):
        return None

    @jobs.function("limited", event="hit", rate_limit={"limit": 5, "period": "1h"})
    def limited(ctx, step):
        return None

    barrier = threading.Barrier(8)
    errors = []

    def producer():
        try:
            barrier.wait()
            for _ in range(5):
                backend.send({"name": "hit", "data": {"k": "same"}})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            backend.store.close_thread_connection()

    threads = [threading.Thread(target=producer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_runs("unique")) == 1
    assert len(_runs("limited")) == 5
    counts = backend.store.queries.skipped_counts(now=backend.now())
    assert counts == {("unique", "idempotency"): 39, ("limited", "rate_limit"): 35}
