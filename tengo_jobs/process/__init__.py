"""The process kinds, each a thin loop around a booted runtime (:func:`tengo_jobs.runtime.boot`):

- :mod:`.web` — ``gunicorn web:app``: the event API, the REST API, the dashboard;
- :mod:`.worker` — ``dramatiq actors``: executes runs (Dramatiq's CLI is the process);
- :mod:`.scheduler` — ``python scheduler.py``: cron ticks, due timers, the sweeper;
- :mod:`.dev` — ``tengo-jobs dev``: all three in one process on SQLite.
"""
