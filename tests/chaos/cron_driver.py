"""R8's scheduler stand-in with injected time: ``python -m chaos.cron_driver [options]``.

``scheduler.py`` has no way to run on a simulated clock (its cron jobs are APScheduler
jobs on the wall clock), so each of R8's three scheduler processes is this script: the
runtime is booted from the environment with a ``FakeClock``, and the script does what
``Scheduler`` does for cron, on simulated time — on start ``ensure_cron_state`` and one
catch-up ``fire_cron`` per function, then at every minute tick (plus a jitter of its own,
up to ``--jitter-ms`` of simulated time) one ``fire_cron`` per function.

Simulated time is paced by the real clock, ``sim = t0_sim + (real - t0_real) * speed``, so
the three processes interleave as real schedulers would; each fires at the simulated
instants it planned, whatever the real delays, so the expected ticks do not depend on
the machine's load. ``--outage A B`` makes the process fire nothing in ``[A, B)`` and catch
up at exactly ``B`` (all three given the same window: every scheduler down).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

MINUTE = 60_000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--t0-sim", type=int, required=True, help="simulated epoch ms at t0-real")
    parser.add_argument("--t0-real", type=float, required=True, help="real epoch seconds")
    parser.add_argument("--speed", type=float, required=True, help="simulated ms per real ms")
    parser.add_argument("--start", type=int, required=True, help="simulated ms this process starts")
    parser.add_argument("--end", type=int, required=True, help="simulated ms to stop at")
    parser.add_argument("--outage", type=int, nargs=2, default=None)
    parser.add_argument("--jitter-ms", type=int, default=3_000)
    parser.add_argument("--name", default="driver")
    args = parser.parse_args()

    from tengo_jobs import FakeClock, Settings, boot
    from tengo_jobs.core.cron import parse_cron

    clock = FakeClock(args.start)
    runtime = boot("scheduler", settings=Settings.from_env(), clock=clock)
    functions = runtime.registry.cron_functions()
    specs = {fn.id: parse_cron(fn.cron, function_id=fn.id) for fn in functions}
    started = 0

    def wait_for(sim_ms: int) -> None:
        real = args.t0_real + (sim_ms - args.t0_sim) / args.speed / 1000
        delay = real - time.time()
        if delay > 0:
            time.sleep(delay)

    def fire(now: int) -> None:
        nonlocal started
        clock.set(now)
        for fn in functions:
            started += len(runtime.timekeeper.fire_cron(fn, now=now, spec=specs[fn.id]))

    wait_for(args.start)
    runtime.timekeeper.ensure_cron_state([fn.id for fn in functions], now=args.start)
    fire(args.start)  # Scheduler.start's catch-up
    print(f"{args.name}: started at {args.start}", flush=True)
    tick = (args.start // MINUTE + 1) * MINUTE
    while tick <= args.end:
        at = tick + random.randint(0, args.jitter_ms)
        if args.outage and args.outage[0] <= at < args.outage[1]:
            at = args.outage[1]  # down: nothing until the catch-up at the window's end
            tick = (at // MINUTE) * MINUTE
        wait_for(at)
        fire(at)
        tick += MINUTE
    print(json.dumps({"name": args.name, "started_runs": started}), flush=True)
    runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
