"""Entry point of the web process: ``gunicorn web:app``.

This is the composition root: the engine's app plus Tengo Lugar's own endpoints.
"""

from tengo_jobs.web import create_app

app = create_app()
