"""The Tengo Lugar app's client: its functions, and its tables, pages and CLI command."""

from tengo_jobs import Jobs

import tengo_lugar

jobs = Jobs(app_id="tengo-lugar", extensions=[tengo_lugar.extension])
