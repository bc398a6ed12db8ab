"""The Tengo Lugar app's client."""

from tengo_jobs import Jobs

jobs = Jobs(app_id="tengo-lugar")
