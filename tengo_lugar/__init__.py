"""Tengo Lugar, the ride-sharing app whose background jobs live in ``actors/``.

The parts of the app those jobs need, built on tengo_jobs' public API: its tables
(users, documents, payments, trips, passengers, drivers, cars, notifications, the email
outbox, the error log), email over Resend with templates, ``send_system_notification`` and
``ApiResponse``, the payment gateway, the server actions with their HTTP endpoints and
the outbox page, ``tengo-jobs seed-demo``, and its own settings (:mod:`.settings`).

:data:`extension` brings the tables, pages and command to every tengo_jobs process
that loads ``actors`` (whose client passes it to ``Jobs``).
"""

from tengo_jobs import Extension

from .api_response import ApiError, ApiResponse
from .http import blueprint as actions_blueprint
from .models import APP_MODELS
from .pages import outbox
from .seed import seed_demo_command
from .settings import get_settings

extension = Extension(
    name="tengo-lugar",
    models=tuple(APP_MODELS),
    blueprints=(actions_blueprint, outbox),
    nav_links=(("Email outbox", "tengo_lugar_outbox.outbox_page"),),
    commands=(seed_demo_command,),
    secrets=lambda: get_settings().secrets(),
)

__all__ = ["extension", "ApiResponse", "ApiError"]
