"""Side-effect tables the test functions write to, so tests can count executions across processes.

``ItEffect`` gets one row per execution of a step body. ``CrashEffect`` has a unique
(run_id, step_key) key; a repeated execution does not add a row but increments
``executions`` in the same INSERT (``ON CONFLICT DO UPDATE``), and keeps the wall-clock
times of the first and the last execution so a test can tell which kill caused it.
"""

from __future__ import annotations

import time

import peewee as pw

from tengo_jobs.store.schema import database_proxy


class _Base(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class ItEffect(_Base):
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    at_ms = pw.BigIntegerField()

    class Meta:
        table_name = "it_effects"


class CrashEffect(_Base):
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    executions = pw.IntegerField(default=1)
    first_at_ms = pw.BigIntegerField()
    last_at_ms = pw.BigIntegerField()

    class Meta:
        table_name = "crash_effects"
        indexes = ((("run_id", "step_key"), True),)


EFFECT_MODELS = [ItEffect, CrashEffect]


def create_tables(db: pw.Database) -> None:
    db.create_tables(EFFECT_MODELS, safe=True)


def record(run_id: str, step_key: str) -> int:
    """Record one execution of a step body; returns how many executions it has had so far."""
    ItEffect.insert(run_id=run_id, step_key=step_key, at_ms=int(time.time() * 1000)).execute()
    return (ItEffect.select().where((ItEffect.run_id == run_id) & (ItEffect.step_key == step_key))
            .count())


def record_unique(run_id: str, step_key: str) -> None:
    """A plain INSERT under a unique key; a duplicate execution is counted, not lost."""
    now = int(time.time() * 1000)
    (CrashEffect.insert(run_id=run_id, step_key=step_key, executions=1, first_at_ms=now,
                        last_at_ms=now)
     .on_conflict(conflict_target=[CrashEffect.run_id, CrashEffect.step_key],
                  update={CrashEffect.executions: CrashEffect.executions + 1,
                          CrashEffect.last_at_ms: now})
     .execute())
