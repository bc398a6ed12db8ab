"""R8's cron functions, one per misfire policy, every minute (``TENGO_FUNCTIONS=chaos.cron_funcs``).

``chaos.cron_funcs_hourly`` adds the same three policies on ``0 * * * *``, where a
10-minute outage shows ``skip`` dropping a tick that ``coalesce`` and ``all`` still run.
"""

from __future__ import annotations

from tengo_jobs import Jobs

jobs = Jobs(app_id="chaos-cron")
POLICIES = ("coalesce", "skip", "all")


def declare(schedule: str, label: str) -> None:
    for policy in POLICIES:
        def tick(ctx, step):
            return step.run("tick", lambda: ctx.event.ts)

        jobs.function(f"chaos-cron-{label}-{policy}", cron=schedule, misfire=policy,
                      retries=0)(tick)


declare("* * * * *", "minute")
