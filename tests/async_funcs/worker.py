"""Worker entry point: ``dramatiq async_funcs.worker`` (runtime from the environment)."""

from tengo_jobs import Jobs

from . import flows

jobs = Jobs(app_id=flows.APP_ID)
flows.register(jobs)
