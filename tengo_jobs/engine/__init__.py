"""Execution: turning stored state into work, on a :class:`~tengo_jobs.store.Store`.

- :mod:`.intake` — accepting events (validate, store, wake);
- :mod:`.executor` — a worker's handling of "look at run R now" (lease keeper included);
- :mod:`.invocation` — one handler invocation on a leased run: context, memo, its writes;
- :mod:`.steps` — the ``step`` object: run, transaction, sleep, wait_for_event, invoke,
  send_event, and how attempts are counted;
- :mod:`.timekeeper` — cron ticks, due timers and the sweeper;
- :mod:`.control` — cancel, replay and the functions overview.

Each part is given what it needs (the store, the registry, a clock, an ``enqueue``
callable) when a process is composed (:mod:`tengo_jobs.runtime`); none imports a process.
"""
