"""R5: the web process is SIGKILLed after committing events and before sending their wake-ups.

The engine has no fault-injection hook for that window, so the test makes one from the
outside: only the web process reaches Redis through a TCP proxy (``HoldingProxy``).
Each cycle starts ``gunicorn web:app``, sets the proxy to hold, POSTs a batch of events
with ids of their own, waits until ``tj_events`` holds them (the intake committed; it is
its wake-ups leave from a background thread, now blocked on the held proxy), and
SIGKILLs gunicorn's process group there. No message was ever sent; the client may have
been answered 200 (its events were committed), never anything else.

Checked: every stored event's run starts no later than the documented bound after the
event was received — the sweeper's grace for a lost wake-up when the queue is empty
(``min(5 s, TENGO_REDELIVER_AFTER)``) + ``TENGO_SWEEP_INTERVAL``, plus a slack for
execution on a loaded machine — and no earlier than that grace (proof that the wake-up
was really lost and the sweeper is what started it); every run completes. The fast size
uses a 2 s grace + 1 s sweeps; ``CHAOS_FULL=1`` the defaults, 5 s + 5 s = 10 s.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from tengo_jobs.durations import to_ms
from tengo_jobs.engine.timekeeper import LOST_WAKEUP_AFTER_MS
from webhelpers import EVENT_KEY

from . import FULL, size
from .servers import HoldingProxy
from .stack import Sql, Stack, chaos_env, report, wait_all_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(240, 1800))]

CYCLES = size(10, 200)
BATCH = 3
REDELIVER = "60s" if FULL else "2s"
SWEEP = "5s" if FULL else "1s"
GRACE = min(to_ms(REDELIVER), LOST_WAKEUP_AFTER_MS)
SLACK_MS = 5_000


def test_events_committed_before_a_web_kill_start_within_the_redelivery_bound(
        tmp_path, redis_url, postgres_url, queue_name):
    target = urlsplit(redis_url)
    proxy = HoldingProxy(target.hostname, target.port or 6379)
    env = chaos_env(postgres_url, redis_url, queue_name, TENGO_REDELIVER_AFTER=REDELIVER,
                    TENGO_SWEEP_INTERVAL=SWEEP)
    stack = Stack(tmp_path, env)
    sql = Sql(postgres_url)
    web_redis = f"redis://127.0.0.1:{proxy.port}/{target.path.lstrip('/') or '0'}"
    answered: list[int] = []
    try:
        stack.scheduler()
        stack.worker(threads=4)
        for cycle in range(CYCLES):
            proxy.hold.clear()
            web = stack.web(REDIS_URL=web_redis)
            proxy.hold.set()
            ids = [f"r5-{cycle}-{k}" for k in range(BATCH)]
            events = [{"name": "chaos/quick", "id": i, "data": {"cycle": cycle}} for i in ids]
            client = threading.Thread(target=_post, args=(stack.base, events, answered), daemon=True)
            client.start()
            deadline = time.monotonic() + 20
            while sql.scalar("SELECT count(*) FROM tj_events WHERE external_id = ANY(%s)",
                             (ids,)) < BATCH:
                assert time.monotonic() < deadline, f"cycle {cycle}: events not stored\n{stack.logs()}"
                time.sleep(0.01)
            web.kill()  # SIGKILL gunicorn and its worker: committed, wake-ups not sent
            web.popen.wait(10)
            web.stop()
            client.join(30)
        proxy.hold.clear()
        bound_ms = GRACE + to_ms(SWEEP)
        counts = wait_all_final(sql, expected=CYCLES * BATCH, function_id="chaos-quick",
                                timeout=(bound_ms + SLACK_MS) / 1000 + 30, stack=stack)
    finally:
        stack.stop()
        proxy.close()

    assert set(answered) <= {200}, f"answers other than 200 for stored events: {answered}"
    assert counts == {"completed": CYCLES * BATCH}, counts
    delays = [d for (d,) in sql.rows(
        "SELECT r.started_at - e.received_at FROM tj_runs r JOIN tj_events e ON e.id = r.event_id "
        "WHERE r.function_id = 'chaos-quick' ORDER BY 1")]
    assert len(delays) == CYCLES * BATCH
    assert delays[0] >= GRACE, (
        f"a run started {delays[0]} ms after its event: its wake-up was not lost after all")
    assert delays[-1] <= bound_ms + SLACK_MS, (
        f"a run started {delays[-1]} ms after its event; the bound is {bound_ms} ms "
        f"(grace {GRACE} ms + TENGO_SWEEP_INTERVAL={SWEEP}) + {SLACK_MS} ms slack")
    report("R5", cycles=CYCLES, events=len(delays), redeliver_after=REDELIVER, sweep=SWEEP,
           bound_ms=bound_ms, start_delay_ms={"min": delays[0], "p50": delays[len(delays) // 2],
                                              "max": delays[-1]})


def _post(base: str, events: list[dict], answered: list[int]) -> None:
    try:
        r = requests.post(f"{base}/e/{EVENT_KEY}", json=events, timeout=30)
        answered.append(r.status_code)
    except requests.RequestException:
        pass  # the process was killed under the request: no answer, as expected
