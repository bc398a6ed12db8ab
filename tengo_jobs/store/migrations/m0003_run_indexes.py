"""Fewer, narrower indexes on ``tj_runs``: every run state change writes each of them, which
PostgreSQL pays for in CPU on the hot path.

Dropped:

- ``tj_runs_function_id`` (``function_id``): a prefix of ``tj_runs_function_id_created_at``,
  which serves every lookup by function (the API's filter, ``function_stats``).
- ``tj_runs_status`` (``status``) and ``tj_runs_status_wake_at`` (``status``, ``wake_at``).

Created:

- ``tj_runs_unfinished_wake`` on ``wake_at`` WHERE ``status`` IN ('queued', 'running',
  'sleeping', 'waiting'): the due-run scans (``RUNNABLE`` in ``store/runs.py``: the sweeper's
  ``timers.unsent``, the tester's ``runnable``, ``queries.due_count``) filter on
  ``status IN ('queued', 'running') AND wake_at <= now``; PostgreSQL proves that this implies
  the index's predicate and range-scans ``wake_at``. Finished runs — nearly every row — are
  not in it, so completing a run removes it from this index's working set instead of moving
  it.
- ``tj_runs_status_id`` (``status``, ``id``): the API's and CLI's runs filtered by status
  (``queries.list_runs``: ``status = ? AND id < cursor ORDER BY id DESC LIMIT n``), which
  without it would walk the primary key backwards past every run of the other statuses (a
  rare status such as ``failed`` among millions of completed runs). SQLite, which uses a
  partial index only when the query repeats its predicate word for word, finds the due runs
  through this index too (``status`` IN ('queued', 'running'), a small set).

Unchanged, and what they serve: ``tj_runs_created_at`` (``recent_counts``, the time window
of ``list_runs``), ``tj_runs_function_id_created_at`` (``function_stats`` with its status
condition), ``tj_runs_event_id``, ``tj_runs_unique_key``. Every other status condition is on
a run picked by id (the primary key).
"""

from __future__ import annotations

_STATEMENTS = [
    'DROP INDEX "tj_runs_function_id"',
    'DROP INDEX "tj_runs_status"',
    'DROP INDEX "tj_runs_status_wake_at"',
    'CREATE INDEX "tj_runs_unfinished_wake" ON "tj_runs" ("wake_at") '
    "WHERE \"status\" IN ('queued', 'running', 'sleeping', 'waiting')",
    'CREATE INDEX "tj_runs_status_id" ON "tj_runs" ("status", "id")',
]

STATEMENTS = {"sqlite": _STATEMENTS, "postgresql": _STATEMENTS}
