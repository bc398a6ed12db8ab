"""The sweeper against a real Redis: what it sends again, and what it leaves alone."""

from __future__ import annotations

import pytest

from tengo_jobs import Clock, Jobs
from tengo_jobs.broker import TengoRedisBroker
from tengo_jobs.store.schema import RunRow
from tengo_jobs.testing import make_test_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_runtime(tmp_path, redis_url, queue_name):
    broker = TengoRedisBroker(url=redis_url)
    # Redis stamps messages with the wall clock, so the runtime uses it too (every sweep
    # below passes its own `now`: nothing waits for real time)
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 's.db'}", broker=broker,
                                queue_name=queue_name, clock=Clock())
    Jobs(app_id="s", runtime=runtime).function("swept", event="s.go")(lambda ctx, step: 1)
    yield runtime
    runtime.close()
    for key in broker.client.keys(f"dramatiq:{queue_name}*"):
        broker.client.delete(key)


def _queued(runtime) -> int:
    return runtime.broker.client.llen(f"dramatiq:{runtime.settings.queue_name}")


def test_wake_ups_still_queued_are_not_sent_twice_however_old(redis_runtime):
    runtime = redis_runtime
    runtime.send([{"name": "s.go"} for _ in range(5)])
    runtime.flush()
    assert _queued(runtime) == 5  # a backlog nobody consumes
    runtime.timekeeper.broker.lost_data()  # the marker is set: Redis has not lost anything
    much_later = runtime.now() + 10 * runtime.settings.redeliver_after_ms
    assert runtime.timekeeper.sweep(now=much_later) == []
    assert _queued(runtime) == 5


def test_a_wake_up_older_than_the_queued_ones_was_lost_and_is_sent_again(redis_runtime):
    runtime = redis_runtime
    now = runtime.now()
    [lost_event] = runtime.send({"name": "s.go"}, now=now - 60_000)  # a minute ago...
    runtime.flush()
    runtime.broker.client.delete(f"dramatiq:{runtime.settings.queue_name}")  # ...consumed, lost
    runtime.timekeeper.broker.lost_data()
    [waiting_event] = runtime.send({"name": "s.go"})  # a newer message waits in the queue
    runtime.flush()
    lost = RunRow.get(RunRow.event_id == lost_event)
    assert runtime.timekeeper.sweep(now=now + 60_000) == [lost.id]  # the waiting one: not sent


def test_redis_that_lost_its_data_gets_every_due_run_at_once(redis_runtime):
    runtime = redis_runtime
    runtime.send([{"name": "s.go"} for _ in range(3)])
    runtime.flush()
    runtime.timekeeper.broker.lost_data()  # the scheduler saw Redis with its marker
    for key in runtime.broker.client.keys(f"dramatiq:{runtime.settings.queue_name}*"):
        runtime.broker.client.delete(key)  # Redis restarted empty (no FLUSHDB: shared server)
    assert len(runtime.timekeeper.sweep(now=runtime.now())) == 3  # no waiting for any grace
    runtime.flush()
    assert _queued(runtime) == 3
