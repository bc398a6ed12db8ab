"""RabbitMQ as the broker (``TENGO_BROKER_URL=amqp://…``), on the real RabbitMQ at
127.0.0.1:5672 (guest/guest; ``TEST_RABBITMQ_URL`` overrides): the settings that select it,
its adapter, the engine end to end through a real ``dramatiq`` worker process, the
sweeper's rule on a broker that cannot say what it holds, and the Procfile's processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
from urllib.parse import urlsplit

import pytest
import requests

from conftest import require_service
from engine_funcs import harness
from procs import ROOT, Proc, process_env, start_worker
from test_integration_engine import _check_all_flows, _effects
from tengo_jobs import Settings, logsafe
from tengo_jobs.broker import adapter_for, make_broker
from tengo_jobs.broker.rabbitmq import RabbitmqAdapter
from tengo_jobs.errors import ConfigurationError
from tengo_jobs.store.schema import RunStatus
from webhelpers import EVENT_KEY, bearer, live_env, start_gunicorn, wait_for_run

pika = pytest.importorskip("pika", reason="the rabbitmq extra is not installed")
from dramatiq.brokers.rabbitmq import RabbitmqBroker  # noqa: E402

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def rabbitmq_url(queue_name):
    """The test RabbitMQ; this test's queues (``queue_name`` and Dramatiq's delay and dead
    letter queues) are deleted afterwards."""
    target = urlsplit(RABBITMQ_URL)
    require_service("RabbitMQ", target.hostname, target.port or 5672)
    yield RABBITMQ_URL
    with contextlib.suppress(Exception):
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        channel = connection.channel()
        for name in (queue_name, f"{queue_name}.DQ", f"{queue_name}.XQ"):
            channel.queue_delete(queue=name)
        connection.close()


def _ready(queue_name: str) -> int:
    """Messages ready in the queue, as RabbitMQ itself counts them (its own connection)."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return connection.channel().queue_declare(queue=queue_name, passive=True).method.message_count
    finally:
        connection.close()


# -- settings -------------------------------------------------------------------------------
def test_the_broker_url_picks_rabbitmq_and_redis_url_is_still_accepted():
    amqp = "amqp://tj:rabbit-pass-71c2e9@mq.internal:5672/%2F"
    settings = Settings.from_env({"TENGO_BROKER_URL": amqp})
    assert settings.broker_url == amqp and settings.redis_url is None
    broker = make_broker(settings)
    assert isinstance(broker, RabbitmqBroker)
    adapter = adapter_for(broker)
    assert isinstance(adapter, RabbitmqAdapter) and adapter.needs_waker
    # the older name still works, and the new one wins when both are set
    assert Settings.from_env({"REDIS_URL": "redis://r:6379/0"}).broker_url == "redis://r:6379/0"
    both = Settings.from_env({"REDIS_URL": "redis://r:6379/0", "TENGO_BROKER_URL": amqp})
    assert both.broker_url == amqp
    # its password is a secret like the others
    assert "rabbit-pass-71c2e9" in settings.secrets()
    logsafe.install(settings.secrets())
    assert "rabbit-pass-71c2e9" not in logsafe.redact(f"connecting to {amqp} as tj")


def test_production_names_the_broker_setting_it_refuses():
    safe = dict(env="production", database_url="postgresql://tj@db/tj",
                event_keys=("k" * 20,), dashboard_password="p" * 16)
    placeholder = Settings(broker_url="amqp://tj:change-me@mq/%2F", **safe)
    assert placeholder.production_problems("worker") == [
        "TENGO_BROKER_URL's password is the .env.example placeholder"]
    assert Settings(broker_url="amqp://tj@mq/%2F", **safe).production_problems("worker") == []


def test_an_amqp_url_without_the_extra_is_a_clear_configuration_error(monkeypatch):
    from tengo_jobs.broker import rabbitmq

    monkeypatch.setattr(rabbitmq, "RabbitmqBroker", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'tengo-jobs\[rabbitmq\]'"):
        rabbitmq.make_rabbitmq_broker("amqp://guest:guest@127.0.0.1:5672/%2F")


# -- the adapter on a real RabbitMQ ------------------------------------------------------------
def test_the_adapter_pings_counts_and_knows_nothing_for_the_sweeper(rabbitmq_url, queue_name):
    settings = Settings(broker_url=rabbitmq_url, queue_name=queue_name)
    broker = make_broker(settings)
    adapter = adapter_for(broker)
    try:
        adapter.ping()
        assert adapter.queue_depth(queue_name) == 0  # not declared yet: none, and not created
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            _ready(queue_name)
        probe = adapter.probe(queue_name)
        assert probe.lost_data() is False and probe.oldest_pending_ms() is probe.UNKNOWN
        adapter.ping()  # the channel closed over the missing queue was replaced
    finally:
        broker.close()
    unreachable = adapter_for(make_broker(Settings(broker_url="amqp://guest:guest@127.0.0.1:1/%2F")))
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        unreachable.ping()


# -- the engine through a real worker process ---------------------------------------------------
@pytest.mark.integration
def test_flows_complete_through_a_worker_process_on_rabbitmq(rabbitmq_url, redis_url, backend_url,
                                                              queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name, TENGO_BROKER_URL=rabbitmq_url)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        assert isinstance(runtime.broker, RabbitmqBroker)
        _check_all_flows(runtime, jobs, tmp_path, env)


@pytest.mark.integration
def test_a_lost_wakeup_is_sent_again_after_the_redeliver_bound_and_a_queued_one_is_not(
        rabbitmq_url, redis_url, backend_url, queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name, TENGO_BROKER_URL=rabbitmq_url,
                             TENGO_REDELIVER_AFTER="30s")
    with harness.scheduler_runtime(env) as (runtime, jobs):
        jobs.send([{"name": "it.multi", "data": {"n": n}} for n in range(5)])
        assert runtime.flush()
        assert runtime.broker_adapter.queue_depth(queue_name) == _ready(queue_name) == 5
        start = runtime.now()
        # queued, not yet consumed: the sweeper cannot tell, and sends nothing within the bound
        assert runtime.timekeeper.sweep(now=start + 29_000) == []
        assert _ready(queue_name) == 5
        # the messages are lost (a restart that lost the queue's contents)
        runtime.broker.channel.queue_purge(queue=queue_name)
        assert _ready(queue_name) == 0
        assert runtime.timekeeper.sweep(now=start + 29_000) == []  # still within the bound
        resent = runtime.timekeeper.sweep(now=start + 31_000)  # past TENGO_REDELIVER_AFTER
        assert len(resent) == 5
        assert runtime.flush() and _ready(queue_name) == 5
        assert runtime.timekeeper.sweep(now=start + 31_000) == []  # sent once, not multiplied
        proc = harness.worker(tmp_path, env)
        try:
            runs = harness.drive_until_final(runtime, timeout=60, procs=[proc])
        finally:
            proc.stop()
        assert len(runs) == 5 and {r.status for r in runs} == {RunStatus.COMPLETED}
        for run in runs:
            assert [_effects(run.id, k) for k in ("double", "add", "wrap")] == [1, 1, 1]
        assert _ready(queue_name) == 0


# -- the Procfile's processes ----------------------------------------------------------------
@pytest.mark.integration
def test_the_procfile_processes_run_on_rabbitmq(rabbitmq_url, postgres_url, queue_name, tmp_path):
    """gunicorn, ``dramatiq`` and ``scheduler.py`` with only RabbitMQ as the broker: an event
    posted to the web process runs through a sleep the scheduler wakes, and /healthz and
    /metrics ask RabbitMQ."""
    funcs = "sched_funcs.e2e_funcs"
    env = live_env(postgres_url, "", queue_name, TENGO_FUNCTIONS=funcs,
                   TENGO_BROKER_URL=rabbitmq_url)
    del env["REDIS_URL"]
    procs: list[Proc] = []
    try:
        web, base = start_gunicorn(tmp_path / "web.log", env)
        procs.append(web)
        procs.append(start_worker(funcs, tmp_path / "worker.log", threads=2, **env))
        scheduler = Proc([sys.executable, str(ROOT / "scheduler.py")], process_env(**env),
                         tmp_path / "scheduler.log")
        procs.append(scheduler)
        r = requests.post(f"{base}/e/{EVENT_KEY}", json={"name": "e2e/nap", "data": {}}, timeout=10)
        assert r.status_code == 200, r.text
        nap = wait_for_run(base, r.json()["ids"][0], timeout=60)
        assert nap["output"]["after"] - nap["output"]["before"] >= 2_000
        assert [s["key"] for s in nap["steps"]] == ["before", "s", "after"]
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        metrics = requests.get(f"{base}/metrics", headers=bearer(), timeout=5).text
        assert f'tengo_broker_queue_depth{{queue="{queue_name}"}} 0.0' in metrics
        for proc in procs:
            assert proc.alive(), proc.log()
    finally:
        for proc in procs:
            proc.stop()
