"""Tengo Lugar's additions to the web app: the server actions and the email outbox page.

Installed on every app the engine builds (``web.py`` and ``tengo-jobs dev``) through
:func:`tengo_jobs.web.web_extension`; ``actors`` imports this module.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from ..web import add_nav_link, web_extension
from ..web.auth import require_dashboard
from .http import blueprint as actions_blueprint
from .models import EmailOutbox

outbox = Blueprint("tengo_lugar_outbox", __name__, template_folder="templates")


@outbox.get("/outbox")
@require_dashboard
def outbox_page():
    messages = list(EmailOutbox.select().order_by(EmailOutbox.id.desc()).limit(200))
    return render_template("tl/outbox.html", messages=messages)


@web_extension
def install(app) -> None:
    app.register_blueprint(actions_blueprint)
    app.register_blueprint(outbox)
    add_nav_link(app, "Email outbox", "tengo_lugar_outbox.outbox_page")
