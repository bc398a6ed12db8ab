"""unstable-operation: an operation that may fail; when it fails for good, the admin hears of it.

Event ``unstable.operation`` with ``shouldFail`` (always fail) or ``failTimes`` (fail
that many attempts, then succeed). ``on_failure`` logs the error and sends a system
notification to the admin user named by ``ADMIN_USER_ID``.
"""

from tengo_lugar.email import idempotency_key
from tengo_lugar.links import url
from tengo_lugar.notifications import send_system_notification
from tengo_lugar.settings import get_settings

from .client import jobs


class UnstableOperationError(RuntimeError):
    """The simulated failure of the unstable operation."""


def unstable_step(data: dict, attempt: int) -> dict:
    if data.get("shouldFail"):
        raise UnstableOperationError("the unstable operation failed (shouldFail=true)")
    if attempt < int(data.get("failTimes", 0)):
        raise UnstableOperationError(f"the unstable operation failed on attempt {attempt + 1}")
    return {"ok": True, "attempts": attempt + 1}


def notify_admin(failure: dict, key: str) -> dict:
    admin_id = get_settings().admin_user_id
    if not admin_id:
        return {"notified": False, "reason": "ADMIN_USER_ID is not set"}
    error = failure.get("error") or {}
    response = send_system_notification(
        admin_id, "Falló una función en segundo plano",
        f"{failure.get('function_id')} (run {failure.get('run_id')}) falló: "
        f"{error.get('name', 'Error')}: {error.get('message', '')}",
        "SYSTEM_ALERT", url(f"/admin/runs/{failure.get('run_id')}"),
        {"functionId": failure.get("function_id"), "runId": failure.get("run_id"),
         "error": error}, idempotency_key=key)
    response.raise_for_error("notify-admin")
    return {"notified": True, "adminUserId": admin_id}


def on_unstable_failure(ctx, step):
    failure = ctx.event.data
    error = failure.get("error") or {}
    ctx.logger.error("function %s run %s failed: %s: %s", failure.get("function_id"),
                     failure.get("run_id"), error.get("name"), error.get("message"))
    result = step.run("notify-admin", notify_admin, failure,
                      idempotency_key(ctx.run_id, "notify-admin"))
    if not result["notified"]:
        ctx.logger.warning("the admin was not notified: %s", result["reason"])
    return result


@jobs.function("unstable-operation", event="unstable.operation", retries=2,
               on_failure=on_unstable_failure)
def unstable_operation(ctx, step):
    return step.run("unstable-step", unstable_step, ctx.event.data, ctx.attempt)
