"""Entry point of the web process: ``gunicorn web:app``.

``create_app`` boots the runtime, imports the function modules (``TENGO_FUNCTIONS``,
default ``actors``) and installs what they add to the web app (Tengo Lugar's server
actions and email outbox page: the ``tengo_lugar.extension`` that ``actors`` brings).
"""

from tengo_jobs.process.web import create_app

app = create_app()
