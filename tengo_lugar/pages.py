"""Tengo Lugar's dashboard page: the email outbox, beside the engine's pages.

It extends the engine's ``tj/base.html`` and needs the dashboard password, like every
dashboard page. The app's :data:`~tengo_lugar.extension` registers it and links it in
the navigation.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from tengo_jobs import require_dashboard

from .models import EmailOutbox

outbox = Blueprint("tengo_lugar_outbox", __name__, template_folder="templates")


@outbox.get("/outbox")
@require_dashboard
def outbox_page():
    messages = list(EmailOutbox.select().order_by(EmailOutbox.id.desc()).limit(200))
    return render_template("tl/outbox.html", messages=messages)
