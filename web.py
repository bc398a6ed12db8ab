"""Entry point of the web process: ``gunicorn web:app``.

This is the composition root: the engine's app plus Tengo Lugar's own endpoints.
"""

from tengo_jobs.app.http import blueprint as tengo_lugar_actions
from tengo_jobs.web import create_app

app = create_app()
app.register_blueprint(tengo_lugar_actions)
