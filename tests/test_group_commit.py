"""Group commit: sends from many threads share statements, and each caller still gets
exactly its own ids, stored before it is answered."""

from __future__ import annotations

import threading

import pytest

from tengo_jobs import EventValidationError
from tengo_jobs.store.schema import EventRow, RunRow

pytestmark = pytest.mark.runtime_settings(group_commit=True)


@pytest.fixture
def grouped(backend, jobs):
    """A runtime whose intake groups concurrent sends, with a function each event starts."""
    jobs.function("counted", event="g.sent")(lambda ctx, step: 1)
    return backend


def _send_from_threads(runtime, threads: int, per_thread: int, make_event) -> dict:
    answers: dict[tuple[int, int], str] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(t):
        start.wait()
        for i in range(per_thread):
            [event_id] = runtime.send(make_event(t, i))
            with lock:
                answers[(t, i)] = event_id

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return answers


def test_concurrent_sends_share_statements_and_each_gets_its_own_stored_ids(grouped):
    answers = _send_from_threads(grouped, 8, 50, lambda t, i: {
        "name": "g.sent", "data": {"t": t, "i": i}})
    assert len(answers) == 400 and len(set(answers.values())) == 400
    stored = {e.id: e for e in EventRow.select()}
    for (t, i), event_id in answers.items():  # every answer names the caller's own event
        assert event_id in stored and stored[event_id].data == f'{{"t":{t},"i":{i}}}'
    assert RunRow.select().count() == 400
    group = grouped.intake._group
    assert group.requests == 400 and group.groups < 400  # several requests per statement


def test_one_event_id_sent_by_many_threads_at_once_is_stored_once(grouped):
    answers = _send_from_threads(grouped, 8, 5, lambda t, i: {
        "name": "g.sent", "id": f"order-{i}", "data": {"t": t}})
    for i in range(5):
        ids = {answers[(t, i)] for t in range(8)}
        assert len(ids) == 1  # every sender of order-i is told the one stored event's id
    assert EventRow.select().count() == 5 and RunRow.select().count() == 5


def test_a_bad_batch_is_refused_alone_and_stores_nothing(grouped):
    with pytest.raises(EventValidationError):
        grouped.send([{"name": "g.sent"}, {"name": ""}])
    assert EventRow.select().count() == 0
    assert grouped.send({"name": "g.sent"}) and EventRow.select().count() == 1
