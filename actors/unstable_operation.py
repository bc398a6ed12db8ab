"""unstable-operation: an operation that may fail; when it fails for good, the admin hears of it.

The team's document gives this function's ``onFailure`` handler and leaves out its body
("Function that might fail") and ``logError``. What we built for them:

- the body: one step, unstable-step, that fails while the event asks it to: ``shouldFail``
  (every attempt) or ``failTimes`` (that many attempts, then it succeeds). Default
  retries (4, Inngest's default too), so it fails for good after 5 attempts. Returns
  ``{success: true, attempts}``.
- ``logError({message, context: {eventData}})`` is :func:`tengo_lugar.errorlog.log_error`:
  an ERROR log line and a row in ``tl_error_logs``.

The failure handler is the team's, line for line: it runs once the function has failed,
as its own run (``unstable-operation-failure``), with no steps, and

1. logs ``error.message`` with ``{eventData: event.data}``;
2. notifies ``ADMIN_USER_ID`` with "Job Failed", ``f"Job {event.name} failed:
   {error.message}"``, ``system_error``, ``/admin/jobs``.

``event`` there is the failure event, as in Inngest: its name is
``inngest/function.failed`` and its ``data`` holds ``error``, ``event`` (the original
event), ``run_id`` and ``function_id``. So the message reads "Job
inngest/function.failed failed: …", exactly what the team's handler says on Inngest
(``event.data.function_id`` would name the job). Like the team's code the handler does
not check the notification's ``ApiResponse``; with ``ADMIN_USER_ID`` unset it fails
(logged as a warning) and the handler still completes. Both side effects carry the
idempotency key ``"{run_id}:log-error"`` / ``"{run_id}:notify-admin"``, so a handler
re-run after a crash repeats neither.
"""

from tengo_lugar.email import idempotency_key
from tengo_lugar.errorlog import log_error
from tengo_lugar.errors import AppError
from tengo_lugar.notifications import send_system_notification
from tengo_lugar.settings import get_settings

from .client import jobs


class UnstableOperationError(AppError):
    """The simulated failure of the unstable operation (retried like any error)."""


def unstable_step(data: dict, attempt: int) -> dict:
    if data.get("shouldFail"):
        raise UnstableOperationError("the unstable operation failed (shouldFail=true)")
    if attempt < int(data.get("failTimes", 0)):
        raise UnstableOperationError(f"the unstable operation failed on attempt {attempt + 1}")
    return {"success": True, "attempts": attempt + 1}


def on_unstable_failure(ctx, step):
    event = ctx.event
    error = event.data.get("error") or {}
    message = error.get("message", "")
    log_error(message, {"eventData": event.data},
              idempotency_key=idempotency_key(ctx.run_id, "log-error"))
    admin_user_id = get_settings().admin_user_id
    result = send_system_notification(
        admin_user_id, "Job Failed", f"Job {event.name} failed: {message}", "system_error",
        "/admin/jobs", idempotency_key=idempotency_key(ctx.run_id, "notify-admin"))
    if not result.success:
        ctx.logger.warning("the admin (ADMIN_USER_ID=%r) was not notified: %s", admin_user_id,
                           result.error.message)


@jobs.function("unstable-operation", event="unstable.operation", on_failure=on_unstable_failure)
def unstable_operation(ctx, step):
    return step.run("unstable-step", unstable_step, ctx.event.data, ctx.attempt)
