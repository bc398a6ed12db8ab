"""Worker entry point: ``dramatiq engine_funcs.worker`` (runtime built from the environment)."""

from tengo_jobs import Jobs

from . import cancellable, crash, flows, parallel

jobs = Jobs(app_id=flows.APP_ID)
flows.register(jobs)
crash.register(jobs)
cancellable.register(jobs)
parallel.register(jobs)
