"""Errors of the Tengo Lugar domain, under the engine's one root (:class:`TengoJobsError`).

Whether the engine retries a step depends on the class: anything deriving from
:class:`~tengo_jobs.NonRetriableError` fails the step at once (missing data,
rejected input); the rest are retried with backoff (a gateway or mail server
that is down for a moment).
"""

from __future__ import annotations

from tengo_jobs import NonRetriableError, TengoJobsError


class AppError(TengoJobsError):
    """Base class of the Tengo Lugar domain's errors."""


class JobError(AppError):
    """What the team's functions ``throw new Error(...)``: the job cannot go on; retried like any error."""


class NotFoundError(AppError, NonRetriableError, LookupError):
    """A row a job needs does not exist (retrying will not make it appear)."""


class InvalidDataError(AppError, NonRetriableError, ValueError):
    """Stored or submitted data breaks a business rule; ``field`` names what is wrong."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class SessionRequiredError(AppError, NonRetriableError):
    """An action that acts on behalf of a signed-in user was called without a session."""


class EmailDeliveryError(AppError):
    """The mail provider failed for a moment (5xx, connection error); the step is retried."""


class GatewayUnavailableError(AppError):
    """The payment gateway failed for a moment; the step is retried."""


class NotificationError(AppError):
    """A notification could not be stored (the ``ApiResponse`` says why)."""
