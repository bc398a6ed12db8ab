"""Entry point of the scheduler process: ``python scheduler.py`` (cron ticks, due timers, sweeper)."""

if __name__ == "__main__":
    from tengo_jobs.process.scheduler import main

    raise SystemExit(main())
