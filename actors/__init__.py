"""Tengo Lugar's durable functions. ``dramatiq actors`` imports this package.

Each function lives in its own module; importing them here registers them with
the ``jobs`` client, and declaring the client binds the runtime so the Dramatiq
CLI finds the run-executing actor. The client also brings Tengo Lugar's extension
(its tables, pages and ``seed-demo``) to every process that loads ``actors``.
"""

from .client import jobs
from . import hello  # noqa: F401  (example function)
from . import (daily_trip_reminder, notify_trip_update, payment_reminder,  # noqa: F401
               process_document, process_payment, send_verification_email,
               unstable_operation, welcome_sequence)


__all__ = ["jobs"]
