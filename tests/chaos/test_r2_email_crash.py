"""R2: the worker dies between an email being sent and its step's checkpoint, once per run.

``chaos-email`` sends through Tengo Lugar's ``send_email`` (the real ``resend`` SDK,
pointed at ``tests/fake_resend.py`` by ``RESEND_API_URL``) with
``idempotency_key=f"{run_id}:send-email"`` and then SIGKILLs its own process the first
time a send returned (``tests/chaos/email_funcs.py``). Two workers run under a
supervisor that starts them again.

Checked: every run completed; the fake saw every run's key at least twice (the crashed
send and the re-run) and nothing but that key for it; it created exactly one email per
key (Resend answers a repeated key with the first email), which is the id the run
returned; the outbox table holds one row per key.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from fake_resend import FakeResend

from . import size
from .stack import Sql, Stack, Supervisor, chaos_env, report, wait_all_final

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(180, 1200))]

RUNS = size(20, 200)


def test_a_crash_after_sending_sends_one_email_per_idempotency_key(tmp_path, redis_url,
                                                                  postgres_url, queue_name):
    fake = FakeResend()
    env = chaos_env(postgres_url, redis_url, queue_name, functions="chaos.email_funcs",
                    RESEND_API_KEY="re_test_chaos_r2", RESEND_API_URL=fake.url)
    stack = Stack(tmp_path, env)
    sql = Sql(postgres_url)
    supervisors = []
    try:
        stack.web()
        stack.scheduler()
        supervisors = [Supervisor(stack, threads=2) for _ in range(2)]
        for s in supervisors:
            s.start()
        started = time.monotonic()
        for i in range(0, RUNS, 50):
            stack.send([{"name": "chaos/email", "data": {"n": n}}
                        for n in range(i, min(RUNS, i + 50))])
        counts = wait_all_final(sql, expected=RUNS, function_id="chaos-email",
                                timeout=size(150, 1000), stack=stack)
        elapsed = time.monotonic() - started
    finally:
        for s in supervisors:
            s.stop()
        stack.stop()
        fake.close()

    assert counts == {"completed": RUNS}, counts
    runs = dict(sql.rows("SELECT id, output FROM tj_runs WHERE function_id = 'chaos-email'"))
    expected_keys = {f"{run_id}:send-email" for run_id in runs}
    emails = fake.emails()
    keys = Counter(r.headers.get("idempotency-key") for r in emails)
    assert None not in keys, "an email request without an Idempotency-Key"
    assert set(keys) == expected_keys, "requests carried keys of no run (or a run sent none)"
    resent = {k: n for k, n in keys.items() if n < 2}
    assert not resent, f"runs whose email was not sent again after the crash: {resent}"
    assert len(fake._by_key) == RUNS  # one email created per key; repeats got it replayed
    for run_id, output in runs.items():
        assert json.loads(output)["email_id"] == fake._by_key[f"{run_id}:send-email"]["id"]
    outbox = sql.rows("SELECT idempotency_key, count(*), min(transport) FROM tl_email_outbox "
                      "GROUP BY idempotency_key")
    assert {k for k, _, _ in outbox} == expected_keys
    assert all(n == 1 and t == "resend" for _, n, t in outbox), outbox
    crashes = sql.scalar("SELECT count(*) FROM chaos_effects WHERE kind = 'sent'") - RUNS
    report("R2", runs=RUNS, requests=len(emails), emails_created=len(fake._by_key),
           sent_then_killed=crashes, worker_restarts=sum(s.restarts for s in supervisors),
           max_requests_per_key=max(keys.values()), seconds=round(elapsed, 1))
