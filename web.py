"""Entry point of the web process: ``gunicorn web:app``.

``create_app`` boots the runtime, imports the function modules (``TENGO_FUNCTIONS``,
default ``actors``) and installs what they add to the web app (Tengo Lugar's server
actions and email outbox page: the ``tengo_lugar.extension`` that ``actors`` brings).

A process that must not start (production with unsafe settings) says why on stderr and
exits with gunicorn's "App failed to load" status (4), so gunicorn stops instead of
starting another worker.
"""

from tengo_jobs.errors import TengoJobsError
from tengo_jobs.process.web import create_app
from tengo_jobs.runtime import refuse_to_start

try:
    app = create_app()
except TengoJobsError as exc:
    refuse_to_start("web", exc, code=4)
