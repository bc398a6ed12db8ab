"""Replays say what they replay: two nullable columns on ``tj_runs``.

- ``replay_of``: the id of the run this one replays (``NULL`` for every other run, so every
  existing row is right as it is).
- ``replay_note``: JSON saying how: the step it starts from, what was changed
  (``input`` or ``output`` of that step, with the value supplied), and whether it came
  from a bulk replay.
- ``tj_runs_replay_of``: a partial index on ``replay_of`` for the runs that have one (an
  original's replays in ``GET /api/runs/<id>``); the runs that replay nothing, nearly all,
  are not in it, so starting and finishing them costs this index nothing.
"""

from __future__ import annotations

_INDEX = ('CREATE INDEX "tj_runs_replay_of" ON "tj_runs" ("replay_of") '
          'WHERE "replay_of" IS NOT NULL')

STATEMENTS = {
    "sqlite": [
        'ALTER TABLE "tj_runs" ADD COLUMN "replay_of" VARCHAR(32)',
        'ALTER TABLE "tj_runs" ADD COLUMN "replay_note" TEXT',
        _INDEX,
    ],
    "postgresql": [
        'ALTER TABLE "tj_runs" ADD COLUMN "replay_of" VARCHAR(32)',
        'ALTER TABLE "tj_runs" ADD COLUMN "replay_note" TEXT',
        _INDEX,
    ],
}
