"""The functions under test, served by real workers: ``dramatiq chaos.funcs``.

(``tests/`` is on every child process's PYTHONPATH, see ``tests/procs.py``; web and
scheduler load this module through ``TENGO_FUNCTIONS=chaos.funcs``.)

- ``chaos-four`` (``chaos/four``): four steps, each recording its execution first and then
  taking 10–80 ms so that kills land inside steps; ``data.nap`` adds a 300 ms
  ``step.sleep`` after the second step, so the scheduler's timer poller is needed too.
- ``chaos-quick`` (``chaos/quick``): one step.
- ``chaos-dup-a`` and ``chaos-dup-b`` (both ``chaos/dup``): one step each (R6 counts runs).
- ``chaos-stale`` (``chaos/stale``): the first execution of its step ``slow`` blocks until
  the file ``data.release`` exists; any later execution returns at once (R7).
- ``chaos-poison-raise`` / ``-exit`` / ``-kill`` (``chaos/poison-*``), ``retries=2``: a step
  that raises, calls ``sys.exit(3)`` or SIGKILLs its own process, every time; each has an
  ``on_failure`` handler that records itself (R9).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

from tengo_jobs import Jobs

from . import effects

APP_ID = "chaos"
STEPS = ("s1", "s2", "s3", "s4")
POISON_RETRIES = 2

jobs = Jobs(app_id=APP_ID, extensions=[effects.extension])


@jobs.function("chaos-four", event="chaos/four", retries=20)
def four(ctx, step):
    tokens = []
    for i, name in enumerate(STEPS):
        if i == 2 and ctx.event.data.get("nap"):
            step.sleep("nap", "300ms")

        def body(name=name, i=i):
            out = effects.record(ctx.run_id, name)  # the side effect first...
            time.sleep(random.uniform(0.01, 0.08))  # ...then work, where kills land
            return {**out, "i": i}

        tokens.append(step.run(name, body)["token"])
    return {"n": ctx.event.data.get("n"), "tokens": tokens}


@jobs.function("chaos-quick", event="chaos/quick", retries=20)
def quick(ctx, step):
    return step.run("only", lambda: effects.record(ctx.run_id, "only"))


@jobs.function("chaos-dup-a", event="chaos/dup")
def dup_a(ctx, step):
    return step.run("only", lambda: ctx.event.id)


@jobs.function("chaos-dup-b", event="chaos/dup")
def dup_b(ctx, step):
    return step.run("only", lambda: ctx.event.id)


def _slow(run_id: str, release: str) -> dict:
    out = effects.record(run_id, "slow")
    if effects.count(run_id, "slow") == 1:  # the first execution: hold until released
        deadline = time.monotonic() + 300
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
    return out


@jobs.function("chaos-stale", event="chaos/stale", retries=20)
def stale(ctx, step):
    slow = step.run("slow", _slow, ctx.run_id, ctx.event.data["release"])
    after = step.run("after", lambda: effects.record(ctx.run_id, "after"))
    return {"slow": slow, "after": after}


def _poison_failed(ctx, step):
    failed = ctx.event.data["run_id"]
    step.run("record", lambda: effects.record(failed, "on-failure"))
    return {"failed_run": failed, "error": ctx.event.data["error"]}


def _poison(how: str):
    def body(run_id: str):
        effects.record(run_id, "poison")
        if how == "raise":
            raise RuntimeError("poison step: raised on purpose")
        if how == "exit":
            sys.exit(3)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # not reached

    def handler(ctx, step):
        step.run("poison", body, ctx.run_id)
        return "unreachable"

    handler.__name__ = handler.__qualname__ = f"poison_{how}"
    return handler


for _how in ("raise", "exit", "kill"):
    jobs.function(f"chaos-poison-{_how}", event=f"chaos/poison-{_how}", retries=POISON_RETRIES,
                  on_failure=_poison_failed)(_poison(_how))
