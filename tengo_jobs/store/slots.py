"""Concurrency slots and throttle state: capacity held across every worker process.

The database is the only counter. A run of a function with a concurrency limit takes one
slot per limit right after its acquire (:meth:`SlotStore.take`) — or the acquire took it
already (below) — and gives them back when its execution ends (:meth:`SlotStore.release`):
completed, failed, suspended on a sleep, a wait or a retry backoff, released, or lost. A
slot is a lease (``tj_slots``): the executor's lease keeper renews it with the run's lease
(:meth:`SlotStore.renew`), so the slots of a worker killed mid-step expire with its run
lease and count no more. The limit is never exceeded, across any number of processes.

**Counters** (``m0011``). Each scope key's row (``tj_slot_keys``) counts its slot rows,
live or expired and not yet swept (``used``), so it never undercounts the live ones:

- *taking* one slot is one conditional ``UPDATE … SET used = used + 1 WHERE used <
  limit`` with the slot row (:meth:`SlotStore._count_in`; one statement on PostgreSQL,
  :class:`~tengo_jobs.store.postgres.PgSlotStore`); the run's own acquire does it for its
  function's ``c:fn:<function>`` key when that key is its runs' only limit (``solo``) — the
  executor keeps that slot only when the deployed limits are exactly that key and limit,
  and gives it back otherwise;
- *giving back* is one statement that deletes the slot row and decrements the counter
  (:meth:`SlotStore._count_out`), reading the key's ``waiting`` flag from the row it
  updates: only when it is set does a wake-up look for a waiter (under the key's lock);
- a key at its limit, a new key, two limits, and a run that still holds a slot row of the
  key (an execution that died) take the **locked path**: the key rows are locked in sorted
  order (an upsert, or ``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write lock
  serializes them anyway), *live* slots are counted (an expired lease does not count), and
  the counter is set again from the slot rows. A counter that went wrong behind the store's
  back can make a key look full, never let it overfill, and is set right there.

**Waiting.** A run refused a slot is parked *waiting* on the scope key that was full: still
``queued``, no wake-up due (``wake_at`` is :data:`NEVER`), one row in ``tj_slot_waiters``
in ``queue_at`` order (``created_at - priority * 1000``), and the key's ``waiting`` flag
set — all under the key's lock. Nothing polls it: a give-back that reads the flag wakes
the next waiter of that key if it has room (returned, for the caller to enqueue after
commit), and the wake clears the flag when no waiter is left. A park and a give-back of
the same key are ordered by the key row: the give-back's decrement either comes first (the
parking run then sees the room and takes the slot) or after (it then reads the flag). The
sweeper (:meth:`SlotStore.wake_free`) deletes expired slots under their key's lock, sets
the counter again, and wakes waiters of keys with free slots that no give-back announced:
expired slots of a killed worker, a limit raised by a deploy.

**Parallel branches.** A run's slot covers one executing step. Inside ``step.parallel``,
the first branch executing a step uses the run's slot; each other branch executing a step
at the same time holds a slot of its own (:meth:`SlotStore.take_branch`, holder
``<run id>#<n>``), given back when its step ends and renewed with the run's lease, so the
slots in use are never fewer than the steps executing.

**Fair keys.** Waiters of a function-wide key that also have a keyed limit carry that
key (``fair_key``); the next waiter is taken from the key value served least recently
(``tj_slot_keys.served``, a round-robin counter), skipping key values at capacity, so a
key with thousands of queued runs does not hold back another key's single run.

**Locks.** The locked path and the wake-ups lock the scope-key rows they count, in sorted
order, before they touch ``tj_runs``: slot keys → runs. A take on the counter locks one key
row for one statement, then writes its own slot row; a give-back deletes its slot row, then
updates its key row; the sweeper locks a key, then deletes its expired slot rows. The
acquire's own take locks the run row, then its key row: the only run rows a key-row holder
updates are its own run (whose lease it holds, so no acquire holds it) and waiters (not due,
so no acquire holds them), which makes no cycle. The one cycle left is a run giving back a
slot whose lease already expired while the sweeper deletes it; PostgreSQL aborts one of the
two, and neither is lost (the give-back's slot is the expired one the sweeper deletes; a
failed sweep runs again at the next tick).
"""

from __future__ import annotations

from typing import cast

from ..core.flow_capacity import FUNCTION_SCOPE
from .dialect import Dialect
from .schema import RUNS, SLOT_KEYS, SLOT_WAITERS, SLOTS, THROTTLES

NEVER = 9_000_000_000_000_000  # the wake_at of a run waiting for a slot: no timer, no sweep

# (key, limit, solo)
_UPSERT_KEY = (f'INSERT INTO "{SLOT_KEYS}" ("scope_key", "capacity", "served", "solo") '
               'VALUES (?, ?, 0, ?) ON CONFLICT ("scope_key") DO UPDATE SET '
               '"capacity" = EXCLUDED."capacity", "solo" = EXCLUDED."solo"')
_LIVE = (f'SELECT count(*) FROM "{SLOTS}" WHERE "scope_key" = ? AND "lease_expires_at" > ? '
         'AND "run_id" <> ?')
_TAKE = (f'INSERT INTO "{SLOTS}" ("scope_key", "run_id", "lease_expires_at") VALUES (?, ?, ?) '
         'ON CONFLICT ("scope_key", "run_id") DO UPDATE SET '
         '"lease_expires_at" = EXCLUDED."lease_expires_at"')
# -- the counters (m0011): ``used`` = the key's slot rows, ``waiting`` = runs may wait on it
# (cap, key, cap, key, holder): one more slot when under the limit and not held already.
COUNT_IN = (f'UPDATE "{SLOT_KEYS}" SET "used" = "used" + 1, "capacity" = ?, "solo" = 1 '
            'WHERE "scope_key" = ? AND "used" < ? AND NOT EXISTS (SELECT 1 FROM '
            f'"{SLOTS}" s WHERE s."scope_key" = ? AND s."run_id" = ?)')
INSERT_SLOT = (f'INSERT INTO "{SLOTS}" ("scope_key", "run_id", "lease_expires_at") '
               'VALUES (?, ?, ?)')
DROP_SLOT = f'DELETE FROM "{SLOTS}" WHERE "scope_key" = ? AND "run_id" = ?'
# (cap, key): one slot less (never below 0), the declared limit written.
COUNT_DOWN = ('"used" = CASE WHEN "used" > 0 THEN "used" - 1 ELSE 0 END, "capacity" = ?')
COUNT_OUT = f'UPDATE "{SLOT_KEYS}" SET {COUNT_DOWN} WHERE "scope_key" = ?'
# The acquire's own take (k: the key row, r: the run row): the function's function-wide key,
# when it is the only limit its runs take (solo) and under its limit, and the run holds no
# slot of it yet. PostgreSQL runs it inside the acquire statement (``… FROM r WHERE``).
ACQUIRE_SLOT_WHERE = (f'k."scope_key" = \'{FUNCTION_SCOPE}\' || r."function_id" AND k."solo" = 1 '
                      'AND k."used" < k."capacity" AND NOT EXISTS (SELECT 1 FROM '
                      f'"{SLOTS}" s WHERE s."scope_key" = k."scope_key" AND s."run_id" = r."id")')
# SQLite, after its acquire, in its transaction: (key, key, run id) -> the key's limit.
ACQUIRE_SLOT = (f'UPDATE "{SLOT_KEYS}" SET "used" = "used" + 1 WHERE "scope_key" = ? '
                'AND "solo" = 1 AND "used" < "capacity" AND NOT EXISTS (SELECT 1 FROM '
                f'"{SLOTS}" s WHERE s."scope_key" = ? AND s."run_id" = ?) RETURNING "capacity"')
_NOT_SOLO = f'UPDATE "{SLOT_KEYS}" SET "solo" = 0 WHERE "scope_key" = ?'
_KEY_WAITING = f'SELECT "waiting" FROM "{SLOT_KEYS}" WHERE "scope_key" = ?'
_RECOUNT = (f'UPDATE "{SLOT_KEYS}" SET "used" = (SELECT count(*) FROM "{SLOTS}" s '
            'WHERE s."scope_key" = ?) WHERE "scope_key" = ?')
_MARK_WAITING = f'UPDATE "{SLOT_KEYS}" SET "waiting" = 1 WHERE "scope_key" = ?'
_CLEAR_WAITING = (f'UPDATE "{SLOT_KEYS}" SET "waiting" = 0 WHERE "scope_key" = ? AND "waiting" = 1 '
                  f'AND NOT EXISTS (SELECT 1 FROM "{SLOT_WAITERS}" w WHERE w."scope_key" = ?)')
UNWAIT = f'DELETE FROM "{SLOT_WAITERS}" WHERE "run_id" = ?'
# (fresh, never, run id, token): the acquire is undone, the run stays queued and waits.
_PARK_WAITING = (f'UPDATE "{RUNS}" SET "status" = \'queued\', "lease_owner" = NULL, '
                 '"lease_expires_at" = NULL, "enqueued_at" = NULL, '
                 '"started_at" = CASE WHEN ? THEN NULL ELSE "started_at" END, "wake_at" = ?, '
                 '"inflight" = CASE WHEN "inflight" > 0 THEN "inflight" - 1 ELSE 0 END '
                 'WHERE "id" = ? AND "lease_owner" = ?')
_WAIT = (f'INSERT INTO "{SLOT_WAITERS}" ("run_id", "scope_key", "queue_at", "fair_key", "since") '
         'VALUES (?, ?, ?, ?, ?) ON CONFLICT ("run_id") DO UPDATE SET '
         '"scope_key" = EXCLUDED."scope_key", "queue_at" = EXCLUDED."queue_at", '
         '"fair_key" = EXCLUDED."fair_key"')
# (expires, run id, run id + "$"): the run's slots and its branches' (``<run id>#<n>``).
_RENEW = (f'UPDATE "{SLOTS}" SET "lease_expires_at" = ? WHERE "run_id" >= ? AND "run_id" < ?')
BRANCH_SEP = "#"  # a parallel branch's slot holder: "<run id>#<n>" ("#" sorts before "$")
# The next waiters of a key (key, now, n): the least recently served fair key first, then
# queue order; a waiter whose fair key is at capacity is skipped (it would only wait again).
_NEXT = (f'SELECT w."run_id", w."fair_key" FROM "{SLOT_WAITERS}" w '
         f'LEFT JOIN "{SLOT_KEYS}" f ON f."scope_key" = w."fair_key" '
         'WHERE w."scope_key" = ? AND (w."fair_key" IS NULL OR f."capacity" IS NULL OR '
         f'f."capacity" > (SELECT count(*) FROM "{SLOTS}" s WHERE s."scope_key" = w."fair_key" '
         'AND s."lease_expires_at" > ?)) '
         'ORDER BY COALESCE(f."served", 0), w."queue_at", w."run_id" LIMIT ?')
_WAKE = (f'UPDATE "{RUNS}" SET "wake_at" = ?, "enqueued_at" = ? WHERE "id" = ? '
         'AND "status" = \'queued\' AND "lease_owner" IS NULL')
_SERVED = (f'UPDATE "{SLOT_KEYS}" SET "served" = (SELECT COALESCE(MAX("served"), 0) + 1 '
           f'FROM "{SLOT_KEYS}") WHERE "scope_key" = ?')
_FREE_WITH_WAITERS = (
    f'SELECT k."scope_key" FROM "{SLOT_KEYS}" k WHERE k."scope_key" IN '
    f'(SELECT DISTINCT "scope_key" FROM "{SLOT_WAITERS}") AND k."capacity" > '
    f'(SELECT count(*) FROM "{SLOTS}" s WHERE s."scope_key" = k."scope_key" '
    'AND s."lease_expires_at" > ?)')
_EXPIRED_KEYS = f'SELECT DISTINCT "scope_key" FROM "{SLOTS}" WHERE "lease_expires_at" <= ?'
_DROP_EXPIRED = f'DELETE FROM "{SLOTS}" WHERE "scope_key" = ? AND "lease_expires_at" <= ?'
_USAGE = (
    f'SELECT k."scope_key", k."capacity", '
    f'(SELECT count(*) FROM "{SLOTS}" s WHERE s."scope_key" = k."scope_key" '
    'AND s."lease_expires_at" > ?), '
    f'(SELECT count(*) FROM "{SLOT_WAITERS}" w WHERE w."scope_key" = k."scope_key") '
    f'FROM "{SLOT_KEYS}" k WHERE substr(k."scope_key", 1, ?) = ?')
_WAITING_ON = (f'SELECT "scope_key", "since" FROM "{SLOT_WAITERS}" WHERE "run_id" = ?')
_TAT_ROW = (f'INSERT INTO "{THROTTLES}" ("key", "tat") VALUES (?, 0) '
            'ON CONFLICT ("key") DO NOTHING')
_SET_TAT = f'UPDATE "{THROTTLES}" SET "tat" = ? WHERE "key" = ?'


class SlotStore:
    """Concurrency slots on one database (see the module docstring). The two counter
    transitions, :meth:`_count_in` and :meth:`_count_out`, are short transactions here
    (SQLite); :class:`~tengo_jobs.store.postgres.PgSlotStore` makes each one statement."""

    def __init__(self, dialect: Dialect):
        self.d = dialect
        self.db = dialect.db

    # -- the counter: one key, one statement's worth ------------------------------------------
    def _count_in(self, scope_key: str, capacity: int, holder: str, expires_at: int) -> bool:
        """Take a slot of ``scope_key`` for ``holder`` when its counter is under
        ``capacity`` and ``holder`` has no slot row there yet (the key row exists); its
        waiter row goes (it is not waiting). ``False``: nothing was written."""
        with self.d.transaction():
            if self.d.execute(COUNT_IN, (capacity, scope_key, capacity, scope_key,
                                          holder)).rowcount != 1:
                return False
            self.d.execute(INSERT_SLOT, (scope_key, holder, expires_at))
            self.d.execute(UNWAIT, (holder,))
            return True

    def _count_out(self, scope_key: str, capacity: int, holder: str) -> int | None:
        """Give back ``holder``'s slot of ``scope_key`` (writing the declared ``capacity``);
        the key's ``waiting`` flag, or ``None`` when ``holder`` held no slot there."""
        with self.d.transaction():
            if self.d.execute(DROP_SLOT, (scope_key, holder)).rowcount != 1:
                return None
            self.d.execute(COUNT_OUT, (capacity, scope_key))
            return cast("int | None", self.d.execute(_KEY_WAITING, (scope_key,)).fetchone()[0])

    # -- under the key rows' locks --------------------------------------------------------------
    def _lock(self, scope_key: str, capacity: int | None, solo: bool = False) -> int:
        """Lock a scope key's row (creating it, or updating its limit to ``capacity`` and
        whether it is the only limit of its runs, ``solo``); its limit."""
        if capacity is not None:
            self.d.execute(_UPSERT_KEY, (scope_key, capacity, int(solo)))
            return capacity
        row = self.d.execute(f'SELECT "capacity" FROM "{SLOT_KEYS}" WHERE "scope_key" = ?'
                             f'{self.d.for_update}', (scope_key,)).fetchone()
        return row[0] if row else 0

    def _live(self, scope_key: str, now: int, run_id: str = "") -> int:
        return cast(int, self.d.execute(_LIVE, (scope_key, now, run_id)).fetchone()[0])

    def _recount(self, scope_key: str) -> None:
        """Set the key's counter to its slot rows (the caller holds its lock)."""
        self.d.execute(_RECOUNT, (scope_key, scope_key))

    # -- transitions -------------------------------------------------------------------------------
    def take(self, run_id: str, token: str, keys: list[tuple[str, int]], *, now: int,
             expires_at: int, queue_at: int, fair_key: str | None = None,
             fresh: bool = False) -> tuple[str | None, list[str]]:
        """One slot per ``(scope key, limit)`` for the run ``token`` holds, all or none.

        Returns ``(None, [])`` when taken. Otherwise the run is parked waiting on the first
        full key (its lease given back, ``started_at`` cleared when ``fresh``: it never
        started) and ``(that key, woken)`` is returned: ``woken`` are waiters of the run's
        other keys that have room (the run is not going to use it; they are to enqueue).
        A lost lease parks nothing (``("", [])``).

        A single limit is first tried on its counter alone (:meth:`_count_in`, one
        statement on PostgreSQL); a full counter, a new key, a slot row the run still holds
        from an execution that died, and two limits go through the key rows' locks, where
        live slots are counted (expired ones do not count) and the counters set again."""
        keys = sorted(keys)
        if len(keys) == 1 and self._count_in(keys[0][0], keys[0][1], run_id, expires_at):
            return None, []
        with self.d.transaction():
            limits = {key: self._lock(key, cap, len(keys) == 1) for key, cap in keys}
            full = next((key for key, cap in keys if self._live(key, now, run_id) >= cap), None)
            if full is None:
                self.d.executemany(_TAKE, [(key, run_id, expires_at) for key, _ in keys])
                for key, _ in keys:
                    self._recount(key)
                self.d.execute(UNWAIT, (run_id,))
                return None, []
            if self.d.execute(_PARK_WAITING, (fresh, NEVER, run_id, token)).rowcount != 1:
                return "", []
            for key, _ in keys:
                self.d.execute(DROP_SLOT, (key, run_id))
                self._recount(key)
            self.d.execute(_WAIT, (run_id, full, queue_at, fair_key if full != fair_key else None,
                                   now))
            self.d.execute(_MARK_WAITING, (full,))
            woken = []
            for key, cap in keys:
                if key != full and self._live(key, now) < limits[key]:
                    woken += self._wake_next(key, now, 1)
            return full, woken

    def _wake_next(self, scope_key: str, now: int, n: int) -> list[str]:
        """Wake up to ``n`` waiters of ``scope_key`` (the caller holds its lock)."""
        woken: list[str] = []
        while len(woken) < n:
            rows = self.d.execute(_NEXT, (scope_key, now, n - len(woken))).fetchall()
            if not rows:
                break
            for run_id, fair_key in rows:
                self.d.execute(UNWAIT, (run_id,))
                if self.d.execute(_WAKE, (now, now, run_id)).rowcount == 1:
                    woken.append(run_id)
                if fair_key is not None:
                    self.d.execute(_SERVED, (fair_key,))
        return woken

    def _wake(self, scope_key: str, now: int, n: int | None) -> list[str]:
        """Under the key's lock: wake up to ``n`` (``None``: as many as there are free
        slots) of its waiters if it has free slots, and clear its ``waiting`` flag when no
        waiter is left."""
        with self.d.transaction():
            free = self._lock(scope_key, None) - self._live(scope_key, now)
            woken = self._wake_next(scope_key, now, free if n is None else min(n, free)) \
                if free > 0 else []
            self.d.execute(_CLEAR_WAITING, (scope_key, scope_key))
            return woken

    def release(self, run_id: str, keys: list[tuple[str, int]], now: int) -> list[str]:
        """Give back the run's slots, one counter at a time (:meth:`_count_out`, one
        statement on PostgreSQL), and wake the next waiter of each key whose ``waiting``
        flag is set and that has room (``keys``: the limits the deployed code declares,
        written to the key rows). Returns the woken runs (to enqueue after commit). A key
        nobody waits on costs that one statement."""
        woken: list[str] = []
        for key, cap in sorted(keys):
            if self._count_out(key, cap, run_id):
                woken += self._wake(key, now, 1)
        return woken

    def take_branch(self, holder: str, keys: list[tuple[str, int]], *, now: int,
                    expires_at: int) -> bool:
        """One slot per ``(scope key, limit)`` for ``holder`` (a parallel branch of an
        executing run, ``<run id>#<n>``), all or none; ``False`` when a key is full. Nothing
        is parked: the branch's thread waits and asks again (see
        :meth:`tengo_jobs.engine.invocation.Invocation.branch_slot`). Given back with
        :meth:`release` (``holder`` as the run id)."""
        keys = sorted(keys)
        if len(keys) == 1 and self._count_in(keys[0][0], keys[0][1], holder, expires_at):
            return True
        with self.d.transaction():
            for key, cap in keys:
                self._lock(key, cap, len(keys) == 1)
            if any(self._live(key, now, holder) >= cap for key, cap in keys):
                return False
            self.d.executemany(_TAKE, [(key, holder, expires_at) for key, _ in keys])
            for key, _ in keys:
                self._recount(key)
            return True

    def not_solo(self, scope_key: str) -> None:
        """The key is no longer its runs' only limit (a deploy changed the limits): the
        acquire stops taking its slots."""
        self.d.execute(_NOT_SOLO, (scope_key,))

    def renew(self, run_id: str, expires_at: int) -> None:
        """Extend the slots of an executing run, and of its parallel branches, with its
        lease (the lease keeper)."""
        self.d.execute(_RENEW, (expires_at, run_id, run_id + "$"))

    def wake_free(self, now: int) -> list[str]:
        """The sweeper: drop expired slots (under their key's lock, its counter set again),
        and wake the waiters of keys that have room (slots of a killed worker expired, a
        limit was raised). Returns the woken runs."""
        for (key,) in self.d.execute(_EXPIRED_KEYS, (now,)).fetchall():
            with self.d.transaction():
                self._lock(key, None)
                self.d.execute(_DROP_EXPIRED, (key, now))
                self._recount(key)
        woken: list[str] = []
        for (key,) in self.d.execute(_FREE_WITH_WAITERS, (now,)).fetchall():
            woken += self._wake(key, now, None)
        return woken

    def usage(self, prefix: str, now: int) -> list[tuple[str, int, int, int]]:
        """``(scope key, limit, slots in use, runs waiting)`` of the keys starting with
        ``prefix``."""
        return [tuple(r) for r in self.d.execute(_USAGE, (now, len(prefix), prefix))]

    def waiting_on(self, run_id: str) -> tuple[str, int] | None:
        """The scope key a queued run waits on and since when, or ``None``."""
        row = self.d.execute(_WAITING_ON, (run_id,)).fetchone()
        return (row[0], row[1]) if row else None


class ThrottleStore:
    """GCRA state per throttle key (``tj_throttles``)."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    def schedule(self, key: str, arrivals: list[int], *, interval_ms: float,
                 tolerance_ms: float) -> list[int]:
        """Start times for runs arriving at ``arrivals`` (in order) under one throttle key:
        each starts at its arrival or, when the key is over its rate, when GCRA lets it —
        first come, first started; none is dropped. The key's theoretical arrival time is
        read and written under its row lock."""
        with self.d.transaction():
            self.d.execute(_TAT_ROW, (key,))
            tat = float(self.d.execute(f'SELECT "tat" FROM "{THROTTLES}" WHERE "key" = ?'
                                       f'{self.d.for_update}', (key,)).fetchone()[0])
            starts = []
            for arrival in arrivals:
                start = max(float(arrival), tat - tolerance_ms)
                tat = max(tat, start) + interval_ms
                starts.append(int(-(-start // 1)))  # ceil: never before GCRA allows
            self.d.execute(_SET_TAT, (int(-(-tat // 1)), key))
        return starts


__all__ = ["SlotStore", "ThrottleStore", "NEVER", "BRANCH_SEP"]
