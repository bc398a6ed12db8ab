"""Bulk wake-ups on Redis are the messages a real dramatiq worker consumes, once each."""

from __future__ import annotations

import threading

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from tengo_jobs.broker import send_many
from tengo_jobs.testing import make_test_runtime
from procs import wait_until

pytestmark = pytest.mark.integration


def test_a_bulk_send_is_consumed_by_a_dramatiq_worker_exactly_once_per_run(redis_url, queue_name,
                                                                           tmp_path):
    broker = RedisBroker(url=redis_url, namespace=queue_name)
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'b.db'}", broker=broker,
                                queue_name=queue_name)
    seen, lock = [], threading.Lock()

    def record(run_id, **_options):  # the actor passes detach=True
        with lock:
            seen.append(run_id)
        return "skipped"

    runtime.executor.execute = record
    worker = Worker(broker, worker_timeout=100, worker_threads=2)
    worker.start()
    try:
        run_ids = [f"run-{i}" for i in range(250)]
        assert send_many(runtime.actor, run_ids) is True
        wait_until(lambda: len(seen) >= 250, timeout=20, message="250 wake-ups consumed")
        assert sorted(seen) == sorted(run_ids)
        assert broker.client.llen(f"{queue_name}:{queue_name}") == 0
    finally:
        worker.stop()
        for key in broker.client.keys(f"{queue_name}*"):
            broker.client.delete(key)
        runtime.close()
