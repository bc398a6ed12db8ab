"""The dashboard's events: the list (newest first, keyset pages, filtered by name), one
event (its payload, the id used for dedupe, the runs it started and, per function it
triggers, why it started none), and the send-test-event form.

The form re-renders itself with the error next to the field that is wrong (invalid JSON
in ``data``, a reserved or missing ``name``, an ``id`` too long) and with everything
typed kept; a valid event redirects to its page. ``/static/tj/json-field.js`` (served
behind the password, as the pages that use it are) checks the JSON as it is typed; the
server's check is the one that counts.

Routes of the dashboard's blueprint (:mod:`.dashboard`): they share its login, error
page and endpoint names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from flask import current_app, redirect, render_template, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from ...errors import TengoJobsError, ValidationError
from . import params
from .auth import require_dashboard
from .dashboard import STATIC, bp

if TYPE_CHECKING:
    from ...core.registry import Registry
    from ...runtime import Runtime

PAGE = 50
FORM_FIELDS = ("name", "data", "id")


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


@bp.get("/static/tj/json-field.js")
@require_dashboard
def json_field_script() -> ResponseReturnValue:
    """Live JSON checking for the textareas marked ``data-json`` (optional: the server checks)."""
    return send_from_directory(STATIC, "json-field.js", max_age=3600,
                               mimetype="text/javascript")


def _list_page(*, form: dict[str, Any] | None = None, errors: dict[str, Any] | None = None,
               status: int = 200) -> ResponseReturnValue:
    name = params.text_arg("name")
    page = _runtime().store.queries.list_events(name=name, limit=PAGE,
                                                cursor=params.cursor_arg())
    return render_template("tj/events.html", events=page["data"],
                           next_cursor=page.get("next_cursor"), name=name or "",
                           form=form or {}, errors=errors or {}), status


@bp.get("/events")
@require_dashboard
def events_page() -> ResponseReturnValue:
    return _list_page()


def _field_of(exc: TengoJobsError) -> str:
    """The form field an error is shown next to (``event`` when it is about the whole)."""
    field = getattr(exc, "field", None) or "event"
    field = field.split(".", 1)[0].split("[", 1)[0]
    return field if field in FORM_FIELDS else "event"


@bp.post("/events/send")
@require_dashboard
def send_test_event() -> ResponseReturnValue:
    """Send one event from the form; on any error, the form again with the error next to
    its field and what was typed kept (400)."""
    form = {field: request.form.get(field, "") for field in FORM_FIELDS}
    event: dict[str, Any] = {"name": form["name"].strip()}
    try:
        raw = form["data"].strip() or "{}"
        event["data"] = params.parse_json(raw, field="data", what="data")
        if not isinstance(event["data"], dict):
            raise ValidationError("data must be a JSON object, like {\"userId\": \"u-1\"}",
                                  field="data")
        if form["id"].strip():
            event["id"] = form["id"].strip()
        ids = _runtime().send(event)
    except TengoJobsError as exc:
        return _list_page(form=form, errors={_field_of(exc): str(exc)}, status=400)
    return redirect(url_for(".event_page", event_id=ids[0]))


@bp.get("/events/<event_id>")
@require_dashboard
def event_page(event_id: str) -> ResponseReturnValue:
    runtime = _runtime()
    try:
        event = runtime.store.queries.get_event(event_id)
    except TengoJobsError as exc:
        return render_template("tj/message.html", title="Event not found", message=str(exc)), 404
    return render_template("tj/event.html", event=event,
                           outcomes=outcomes(event, runtime.registry),
                           paused=runtime.store.queries.paused_functions())


def outcomes(event: dict[str, Any], registry: Registry) -> list[dict[str, Any]]:
    """Per function the event concerns (those its name triggers now, and any that started a
    run or recorded a decision for it): ``{function_id, runs, decisions, note}``.
    ``decisions`` are the flow-control records (skipped with a reason, deduplicated,
    rate-limited, debounced or batched into a run); ``note`` explains a function with
    neither."""
    by_fn: dict[str, dict[str, Any]] = {}

    def entry(fn_id: str) -> dict[str, Any]:
        return by_fn.setdefault(fn_id, {"function_id": fn_id, "runs": [], "decisions": [],
                                        "note": None})

    for fn in registry.triggered_by(event["name"]):
        entry(fn.id)
    for run in event.get("runs") or []:
        entry(run["function_id"])["runs"].append(run)
    for decision in event.get("flow_control") or []:
        entry(decision["function_id"])["decisions"].append(decision)
    for item in by_fn.values():
        if not item["runs"] and not item["decisions"]:
            item["note"] = ("started no run and recorded no reason: the function was not "
                            "registered (or not triggered by this name) when the event arrived")
    return sorted(by_fn.values(), key=lambda item: item["function_id"])
