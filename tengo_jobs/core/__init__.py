"""The vocabulary every other part of the engine speaks, with no I/O of its own.

- :mod:`.events` — the event contract (``Event``, validation, reserved names);
- :mod:`.functions` — what ``@jobs.function(...)`` declares (``FunctionDef``);
- :mod:`.registry` — the process's functions and applications' extensions;
- :mod:`.extensions` — what an application adds (tables, pages, commands);
- :mod:`.cron` — Inngest cron strings and their ticks;
- :mod:`.retry` — backoff;
- :mod:`.expressions` — CEL conditions and their index plans.
"""
