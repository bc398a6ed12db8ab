"""R8: three scheduler processes, one-minute crons, one process killed and restarted after
10 minutes down: exactly one run per tick; misfires handled per the function's policy.

Two forms:

- **simulated** (``test_simulated_day``): 24 h of simulated time (6 h in the fast size)
  on one PostgreSQL database, driven by three OS processes running
  ``chaos/cron_driver.py`` (the scheduler's cron duty, ``fire_cron``, on a ``FakeClock``;
  ``scheduler.py`` itself has no injected-time hook). A quarter of the way in, process 3
  is SIGKILLed and started again 10 simulated minutes later. Half-way, all three are down
  from H:58:30 to H+1:08:30, so every policy meets a misfire: minute crons miss
  H:59…H+1:08, the hourly crons miss H+1:00.
  Expected: ``all`` runs every tick; ``coalesce`` runs one tick for the outage, the latest
  (H+1:08, and H+1:00 for the hourly one); ``skip`` the same for the minute cron (H+1:08 is
  30 s old at the catch-up, inside the 60 s grace) and nothing for the hourly one (H+1:00
  is 8.5 minutes old). Every other tick has exactly one run, including while process 3
  was down.
- **real processes** (``test_real_schedulers``): three ``python scheduler.py --cron-second
  */2`` (a tick every 2 s on the real clock, through APScheduler), process 3 SIGKILLed for
  10 ticks and restarted, then all three SIGKILLed for 10 ticks and restarted: the same
  expectations, in real time.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
import time

import pytest

from procs import Proc, process_env, wait_until

from . import size
from .stack import Sql, Stack, report

pytestmark = [pytest.mark.integration]

MINUTE = 60_000
HOUR = 60 * MINUTE
HOURS = size(6, 24)
REAL_SECONDS = size(40, 240)  # the simulated window's length in real time


def _ticks(db: Sql) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    dupes = db.rows("SELECT r.function_id, e.ts, count(*) FROM tj_runs r JOIN tj_events e "
                    "ON e.id = r.event_id GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 10")
    assert not dupes, f"ticks with more than one run: {dupes}"
    for fn, ts in db.rows("SELECT r.function_id, e.ts FROM tj_runs r JOIN tj_events e "
                          "ON e.id = r.event_id ORDER BY 1, 2"):
        found.setdefault(fn, []).append(ts)
    return found


def _driver(tmp_path, env, name: str, common: list[str], start: int, n: int) -> Proc:
    return Proc([sys.executable, "-m", "chaos.cron_driver", *common, "--start", str(start),
                 "--name", name], process_env(**env), tmp_path / f"{name}-{n}.log")


@pytest.mark.timeout(size(180, 600))
def test_simulated_day(tmp_path, postgres_url):
    t0 = int(dt.datetime(2030, 1, 7, tzinfo=dt.timezone.utc).timestamp() * 1000) + 10_000
    end = t0 - 10_000 + HOURS * HOUR
    speed = HOURS * HOUR / (REAL_SECONDS * 1000)
    half = t0 - 10_000 + (HOURS // 2) * HOUR  # H+1:00
    outage = (half - 90_000, half + 8 * MINUTE + 30_000)  # H:58:30 .. H+1:08:30
    t0_real = time.time() + 4  # time for the processes to boot
    env = {"DATABASE_URL": postgres_url, "TENGO_ENV": "test",
           "TENGO_FUNCTIONS": "chaos.cron_funcs,chaos.cron_funcs_hourly"}
    common = ["--t0-sim", str(t0), "--t0-real", repr(t0_real), "--speed", repr(speed),
              "--end", str(end), "--outage", str(outage[0]), str(outage[1])]
    sql = Sql(postgres_url)
    procs = [_driver(tmp_path, env, f"sched{i}", common, t0, 1) for i in (1, 2, 3)]
    try:
        kill_sim = t0 + (end - t0) // 4
        time.sleep(max(0.0, t0_real + (kill_sim - t0) / speed / 1000 - time.time()))
        assert procs[2].alive(), procs[2].log()
        procs[2].kill(signal.SIGKILL)
        procs[2].popen.wait(10)
        killed_at = t0 + int((time.time() - t0_real) * 1000 * speed)
        back_at = killed_at + 10 * MINUTE
        procs[2].stop()
        procs.append(_driver(tmp_path, env, "sched3", common, back_at, 2))
        wait_until(lambda: not any(p.alive() for p in procs), timeout=REAL_SECONDS + 120,
                   interval=0.5, message="the drivers to reach the end of the window")
        assert [p.popen.returncode for p in procs] == [0, 0, -9, 0], \
            "\n".join(p.log()[-2000:] for p in procs)
    finally:
        for p in procs:
            p.stop()

    found = _ticks(sql)
    minutes = list(range(t0 - 10_000 + MINUTE, end + 1, MINUTE))
    hours = list(range(t0 - 10_000 + HOUR, end + 1, HOUR))
    missed_minutes = set(range(half - MINUTE, half + 8 * MINUTE, MINUTE))  # H:59 .. H+1:07
    expected = {
        "chaos-cron-minute-all": minutes,
        "chaos-cron-minute-coalesce": [t for t in minutes if t not in missed_minutes],
        "chaos-cron-minute-skip": [t for t in minutes if t not in missed_minutes],
        "chaos-cron-hour-all": hours,
        "chaos-cron-hour-coalesce": hours,
        "chaos-cron-hour-skip": [t for t in hours if t != half],
    }
    for fn, ticks in expected.items():
        got = found.get(fn, [])
        missing = sorted(set(ticks) - set(got))
        extra = sorted(set(got) - set(ticks))
        assert not missing and not extra, (
            f"{fn}: {len(missing)} tick(s) without a run {[_iso(t) for t in missing[:5]]}, "
            f"{len(extra)} unexpected {[_iso(t) for t in extra[:5]]}; process 3 was down "
            f"{_iso(killed_at)}..{_iso(back_at)}, all down {_iso(outage[0])}..{_iso(outage[1])}")
    report("R8-simulated", hours=HOURS, real_seconds=REAL_SECONDS,
           runs={fn: len(t) for fn, t in found.items()},
           process3_down=[_iso(killed_at), _iso(back_at)],
           all_down=[_iso(outage[0]), _iso(outage[1])],
           per_process=[p.log().strip().splitlines()[-1] for p in procs if p.popen.returncode == 0])


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%H:%M:%S")


TICK_MS = 2_000


@pytest.mark.timeout(240)
def test_real_schedulers(tmp_path, postgres_url):
    env = {"DATABASE_URL": postgres_url, "TENGO_ENV": "test", "TENGO_FUNCTIONS": "chaos.cron_funcs"}
    stack = Stack(tmp_path, env)
    sql = Sql(postgres_url)
    try:
        scheds = [stack.scheduler("--cron-second", "*/2") for _ in range(3)]
        first = int(time.time() * 1000)
        time.sleep(8)
        scheds[2].kill(signal.SIGKILL)  # process 3 down for 10 ticks
        scheds[2].popen.wait(10)
        time.sleep(10 * TICK_MS / 1000)
        scheds[2] = stack.scheduler("--cron-second", "*/2")
        time.sleep(6)
        down_from = int(time.time() * 1000)
        for s in scheds:  # every scheduler down for 10 ticks
            s.kill(signal.SIGKILL)
        for s in scheds:
            s.popen.wait(10)
        time.sleep(10 * TICK_MS / 1000)
        back_from = int(time.time() * 1000)  # the catch-up runs a moment later, at boot
        back = [stack.scheduler("--cron-second", "*/2") for _ in range(3)]
        time.sleep(8)
        last = int(time.time() * 1000) - TICK_MS
        assert all(p.alive() for p in back), stack.logs()
    finally:
        stack.stop()

    found = _ticks(sql)
    start = min(min(v) for v in found.values())
    assert start - first < 3 * TICK_MS
    ticks = list(range(start, last, TICK_MS))
    before = [t for t in ticks if t <= down_from]
    after = [t for t in ticks if t > down_from]
    # minute-all: every tick, the outage's included (the catch-up starts them all)
    assert set(ticks) <= set(found["chaos-cron-minute-all"])
    missed = {}
    for policy in ("coalesce", "skip"):
        # 1-minute crons: the ticks of the outage have no run except the latest one at the
        # catch-up (``skip``: it is under the 60 s grace), and every tick from it on has one
        got = set(found[f"chaos-cron-minute-{policy}"])
        assert set(before) <= got, f"{policy}: ticks missed before the outage"
        resumed = min(t for t in after if t in got)
        assert resumed >= back_from - TICK_MS, (
            f"{policy}: a tick of the outage ({resumed}) ran though it was not the latest at "
            f"the catch-up (restart began at {back_from})")
        assert {t for t in after if t >= resumed} <= got, f"{policy}: a tick missed after the catch-up"
        missed[policy] = len([t for t in after if t < resumed])
        assert missed[policy] >= 9, (policy, missed)
    report("R8-real", ticks=len(ticks), coalesced_ticks=missed,
           runs={fn: len(t) for fn, t in found.items()})
