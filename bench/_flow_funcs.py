"""Functions the flow-control benchmark's worker serves (``dramatiq _flow_funcs -p 2 -t 8``,
bench/ on PYTHONPATH): the W4 workload (four sequential trivial ``step.run`` steps) under
different capacity options, one function per case.

* ``w4-free``: no flow control (the baseline of the same invocation);
* ``w4-c10``: ``concurrency=10``; ``w4-c1000``: ``concurrency=1000`` (never binds here);
* ``w4-keys``: ``concurrency={"limit": 1, "key": "event.data.k"}`` (many keys, a backlog each);
* ``w4-fair``: ``concurrency=[{"limit": 10}, {"limit": 5, "key": "event.data.c"}]``: a hot
  customer's backlog and a cold customer's lone run (fair keys).
"""

from __future__ import annotations

from tengo_jobs import Jobs

jobs = Jobs(app_id="bench-flow")  # binds the runtime from the environment

CASES = {
    "w4-free": None,
    "w4-c10": 10,
    "w4-c1000": 1000,
    "w4-keys": {"limit": 1, "key": "event.data.k"},
    "w4-fair": [{"limit": 10}, {"limit": 5, "key": "event.data.c"}],
}


def _w4(ctx, step):
    a = step.run("s1", lambda: {"step": 1, "ok": True})
    b = step.run("s2", lambda: {"step": 2, "prev": a["step"]})
    c = step.run("s3", lambda: {"step": 3, "prev": b["step"]})
    return step.run("s4", lambda: {"step": 4, "prev": c["step"]})


def event_of(function_id: str) -> str:
    return f"bench.flow.{function_id}"


for _fid, _limit in CASES.items():
    _options = {} if _limit is None else {"concurrency": _limit}
    jobs.function(_fid, event=event_of(_fid), retries=0, **_options)(_w4)
