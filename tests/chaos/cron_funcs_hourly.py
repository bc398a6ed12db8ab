"""R8's hourly cron functions (with ``chaos.cron_funcs``): ``0 * * * *`` under each misfire policy."""

from .cron_funcs import declare, jobs  # noqa: F401

declare("0 * * * *", "hour")
