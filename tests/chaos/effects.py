"""``chaos_effects``: one row per execution of a step body, written by the body itself.

A body calls :func:`record` first thing. The row says which run and step, which
execution (a fresh ``token``), which process (``pid``), when (``at_ms``, wall clock,
the same clock the executor stamps ``tj_steps.ended_at`` with on this machine) and
whether the step's checkpoint was already committed when the body started
(``saw_committed``: read from ``tj_steps`` at that moment). The body returns the token,
so the committed output names the execution that produced it.

So a test can tell, from SQL alone, that a committed step never ran again
(``saw_committed`` is never true, no execution started after the checkpoint) and whose
output was kept.
"""

from __future__ import annotations

import os
import time
import uuid

import peewee as pw

from tengo_jobs import AppModel, Extension, get_runtime


class ChaosEffect(AppModel):
    id = pw.BigAutoField()
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    token = pw.CharField(max_length=32)
    pid = pw.IntegerField()
    at_ms = pw.BigIntegerField()
    saw_committed = pw.BooleanField(default=False)
    kind = pw.CharField(max_length=16, default="run")  # "run", or "sent" after an email went out

    class Meta:
        table_name = "chaos_effects"
        indexes = ((("run_id", "step_key"), False),)


extension = Extension(name="chaos-effects", models=(ChaosEffect,))


def _committed(run_id: str, step_key: str) -> bool:
    db = get_runtime().db
    p = "%s" if isinstance(db, pw.PostgresqlDatabase) else "?"
    row = db.execute_sql(
        f'SELECT 1 FROM "tj_steps" WHERE "run_id" = {p} AND "key" = {p} AND "status" = {p}',
        (run_id, step_key, "completed")).fetchone()
    return row is not None


def record(run_id: str, step_key: str, *, kind: str = "run") -> dict:
    """Record this execution of ``step_key``; returns ``{"token", "pid"}`` for the step output."""
    token = uuid.uuid4().hex
    ChaosEffect.insert(run_id=run_id, step_key=step_key, token=token, pid=os.getpid(),
                       at_ms=int(time.time() * 1000), saw_committed=_committed(run_id, step_key),
                       kind=kind).execute()
    return {"token": token, "pid": os.getpid()}


def count(run_id: str, step_key: str, *, kind: str = "run") -> int:
    return (ChaosEffect.select()
            .where((ChaosEffect.run_id == run_id) & (ChaosEffect.step_key == step_key)
                   & (ChaosEffect.kind == kind)).count())
