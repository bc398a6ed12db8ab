"""The dashboard's runs page at millions of runs: ``tj_runs_function_status_id`` on
(``function_id``, ``status``, ``id``).

It serves the runs page filtered by function and status (``status = ? AND function_id = ?
ORDER BY id DESC``, keyset on ``id``: a run's id is a ULID of its creation time, so a
creation time range is an ``id`` range too) and the page's counts per status for one
function (``SELECT 1 … LIMIT cap`` per status, index-only). Without it, counting one
function's completed runs up to the cap walked ``(status, id)`` or the table and
filtered on ``function_id`` (64 ms at 1,000,000 runs against 0.7–22 ms with it; see
``bench/dashboard_pages.py``). ``(function_id, created_at)`` stays: the API's and
``function_stats``' time windows use it.
"""

from __future__ import annotations

_STATEMENTS = [
    'CREATE INDEX "tj_runs_function_status_id" ON "tj_runs" ("function_id", "status", "id")',
]

STATEMENTS = {"sqlite": _STATEMENTS, "postgresql": _STATEMENTS}
