"""R6: event ids sent 1–5 times each, from 2 sender processes with 4 threads each (8 threads),
to ``gunicorn web:app -w 2``: exactly one run per (event id, function).

Each id is sent 1–5 times, in shuffled batches of 1–10 events (a batch may hold an id
twice), so copies of one id race each other across threads, processes and gunicorn
workers. Two functions (``chaos-dup-a``, ``chaos-dup-b``) are triggered by the event.
Senders retry a batch on 5xx or a connection error, as an SDK would.

Checked: every batch was finally answered 200; every answer for an id named the same
event, the one stored; ``tj_events`` holds each id once; ``tj_runs`` holds exactly one run
per (id, function). The figures report how many answers were not 200 (and which).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter, defaultdict

import pytest

from procs import Proc, process_env, wait_until

from . import size
from .stack import Sql, Stack, chaos_env, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(size(240, 1800))]

IDS = size(1000, 10_000)
PROCESSES = 2
THREADS = 4


def test_duplicate_event_ids_start_exactly_one_run_per_function(tmp_path, redis_url,
                                                               postgres_url, queue_name):
    rng = random.Random()
    copies = {f"dup-{i:05d}": rng.randint(1, 5) for i in range(IDS)}
    sends = [event_id for event_id, n in copies.items() for _ in range(n)]
    rng.shuffle(sends)
    batches = []
    while sends:
        k = rng.randint(1, 10)
        batches.append(sends[:k])
        del sends[:k]
    stack = Stack(tmp_path, chaos_env(postgres_url, redis_url, queue_name))
    sql = Sql(postgres_url)
    senders = []
    try:
        stack.web(workers=2)
        started = time.monotonic()
        for p in range(PROCESSES):
            plan = tmp_path / f"plan{p}.json"
            plan.write_text(json.dumps(batches[p::PROCESSES]))
            senders.append(Proc([sys.executable, "-m", "chaos.sender", stack.base, str(plan),
                                 str(tmp_path / f"answers{p}.jsonl"), "--threads", str(THREADS)],
                                process_env(), tmp_path / f"sender{p}.log"))
        wait_until(lambda: not any(s.alive() for s in senders), timeout=size(200, 1700),
                   interval=0.5, message="the senders to finish")
        elapsed = time.monotonic() - started
        assert all(s.popen.returncode == 0 for s in senders), [s.log()[-2000:] for s in senders]
    finally:
        for s in senders:
            s.stop()
        stack.stop()

    statuses: Counter = Counter()
    answered: dict[str, set] = defaultdict(set)
    batches_ok = 0
    for p in range(PROCESSES):
        for line in (tmp_path / f"answers{p}.jsonl").read_text().splitlines():
            a = json.loads(line)
            statuses[a["status"]] += 1
            if a["status"] == 200:
                batches_ok += 1
                assert len(a["returned"]) == len(a["ids"])
                for event_id, returned in zip(a["ids"], a["returned"]):
                    answered[event_id].add(returned)
    assert batches_ok == len(batches), f"batches never accepted: {statuses}"
    split = {k: v for k, v in answered.items() if len(v) != 1}
    assert not split, f"ids answered with different event ids: {list(split.items())[:5]}"

    stored = dict(sql.rows("SELECT external_id, min(id) FROM tj_events GROUP BY external_id "
                           "HAVING count(*) = 1"))
    assert sql.scalar("SELECT count(*) FROM tj_events") == IDS
    assert set(stored) == set(copies)
    assert all(answered[k] == {v} for k, v in stored.items()), "an answer named an unstored event"
    wrong = sql.rows("SELECT e.external_id, r.function_id, count(*) FROM tj_runs r "
                     "JOIN tj_events e ON e.id = r.event_id GROUP BY 1, 2 HAVING count(*) <> 1 "
                     "LIMIT 10")
    assert not wrong, wrong
    assert dict(sql.rows("SELECT function_id, count(*) FROM tj_runs GROUP BY 1")) == {
        "chaos-dup-a": IDS, "chaos-dup-b": IDS}
    report("R6", ids=IDS, sends=sum(copies.values()), batches=len(batches),
           answers={str(k): v for k, v in statuses.items()}, seconds=round(elapsed, 1))
