"""The fault battery of issue 8 (R1–R9): real processes, real servers, faults injected from outside.

Every test here starts the Procfile's processes (``gunicorn web:app``, ``dramatiq``,
``python scheduler.py``) on a database and Redis queue of its own, injects a fault
(SIGKILL, SIGSTOP, a Redis or PostgreSQL outage, a network partition, duplicates) and
checks what a user would check: rows in ``tj_events``/``tj_runs``/``tj_steps``, rows the
steps themselves wrote (``chaos_effects``, one per execution of a step body), emails at
the fake Resend, HTTP status codes.

Each test has a fast size (the normal suite, about two minutes at most) and the issue's
full size, chosen by ``CHAOS_FULL=1`` (see ``bench/chaos/README.md``). Everything runs on
this machine: loopback, plus a veth pair inside it for the partition test (R7).
"""

from __future__ import annotations

import os

FULL = os.environ.get("CHAOS_FULL", "").lower() in ("1", "true", "yes")


def size(fast, full):
    """``full`` under ``CHAOS_FULL=1``, else ``fast``."""
    return full if FULL else fast
