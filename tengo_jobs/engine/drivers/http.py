"""The HTTP driver: runs of functions served by an Inngest SDK app (``runtime="http"``).

Inngest's SDK execution protocol (read from inngest 3.32.7's ``InngestCommHandler`` and
``execution/v1``): the worker ``POST``s to the function's step URL (the serve URL with
``fnId`` and ``stepId``) a body ``{event, events, steps, ctx: {run_id, attempt,
disable_immediate_execution, use_api, stack: {stack, current}}, version: 1}`` where
``steps`` is the memo — our stored steps, keyed by the SDK's hashed step ids, each
``{"data": ...}`` or ``{"error": {...}}`` as Inngest's server sends it (inngest-py refuses
any other key; the JS SDK also reads a ``type``). The SDK answers:

- **200**: the function returned (the body is its result) → :class:`Completed`;
- **206**: a list of step operations. ``StepRun`` (a step ran, with its ``data``) →
  a checkpoint; ``StepError`` → a step retry (:class:`~tengo_jobs.core.ops.RetryStep`) or,
  retries spent or ``X-Inngest-No-Retry: true``, the step failed for good (its error goes
  into the memo, so the SDK throws it where the step was awaited); ``Sleep`` /
  ``WaitForEvent`` / ``InvokeFunction`` → pending operations (:class:`Suspended`);
  ``StepPlanned`` (parallel steps) → called again with ``stepId=<that id>``;
- **4xx/5xx**: the function threw; ``X-Inngest-No-Retry: true`` fails the run, anything
  else (and a connection error, a timeout, an oversized answer) retries the whole function
  with backoff (:class:`Errored`), as for a Python function.

The loop continues until the SDK answers 200 or a suspension is reached. Each step's row
is committed before the next call (the next step starts in the SDK). Requests carry
``X-Inngest-Signature`` (``t=<unix seconds>&s=<HMAC-SHA256 of body+t>``, keyed with the
signing key without its ``signkey-<env>-`` prefix) when ``TENGO_SIGNING_KEY`` is set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable

from ...core import ops
from ...core.retry import retry_delay_ms
from ...durations import to_epoch_ms, to_ms
from ...errors import StepError
from ...serde import encode_output
from ...store import StepKind, StepStatus
from .base import Completed, Driver, Errored, Failed, Outcome, Suspended

if TYPE_CHECKING:
    from ..invocation import Invocation

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_CALLS_PER_EXECUTION = 1_000
DEFAULT_WAIT_TIMEOUT = "365d"
SDK_HEADERS = {"Content-Type": "application/json", "User-Agent": "tengo-jobs",
               "X-Inngest-Framework": "tengo-jobs", "X-Inngest-Server-Kind": "dev",
               "X-Inngest-Req-Version": "1"}


class SdkFunctionError(Exception):
    """The SDK app answered that the function threw (outside any step), or could not be
    reached / answered something that is not the protocol."""


def sign(body: bytes, signing_key: str, now_s: int) -> str:
    """Inngest's request signature: ``t=<ts>&s=<hex HMAC-SHA256 of body + ts>``."""
    key = signing_key.split("-", 2)[2] if signing_key.startswith("signkey-") else signing_key
    mac = hmac.new(key.encode(), body + str(now_s).encode(), hashlib.sha256).hexdigest()
    return f"t={now_s}&s={mac}"


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _error_of(value: Any) -> dict:
    """``{name, message}`` of an error the SDK serialized."""
    if isinstance(value, dict):
        return {"name": str(value.get("name") or "Error"),
                "message": str(value.get("message") or value.get("error") or "")}
    return {"name": "Error", "message": str(value)}


def _sleep_wake_at(op: dict, opts: dict, now: int) -> int:
    """When a ``Sleep`` operation wakes. inngest's SDKs put the sleep in the op's ``name``:
    a duration (``"45s"``, ``"1h30m"``; JS ``step.sleep``) or an ISO 8601 time (JS
    ``step.sleepUntil``, and every inngest-py sleep); an empty one (JS durations under a
    second) is no sleep. ``opts.duration`` is honoured too."""
    spec = opts.get("duration") or op.get("name") or "0s"
    if isinstance(spec, str) and len(spec) > 10 and spec[:4].isdigit() and "T" in spec:
        return to_epoch_ms(spec)
    return now + to_ms(spec)


def _resolved(row: Any, **changes: Any) -> Any:
    """A copy of a stored step row (a peewee model, not a dataclass) with ``changes``: the
    memo's view of a sleep or wait whose time came, the stored row left as it is."""
    return type(row)(**{**row.__data__, **changes})


def _step_url(url: str, step_id: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "stepId"]
    query.append(("stepId", step_id))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class HttpDriver(Driver):
    runtimes = ("http",)

    def __init__(self, *, signing_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 find_function: Callable[[str], Any] | None = None):
        self.signing_key = signing_key
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        # Looks up an invoked function by id (refreshing synced apps on a miss).
        self.find_function = find_function

    # -- the wire --------------------------------------------------------------------------
    def call(self, url: str, payload: dict) -> Answer:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = dict(SDK_HEADERS)
        if self.signing_key:
            headers["X-Inngest-Signature"] = sign(body, self.signing_key, int(time.time()))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, raw, got = response.status, response.read(self.max_response_bytes + 1), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(self.max_response_bytes + 1), exc.headers
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            raise SdkFunctionError(f"the SDK app at {url} could not be reached within "
                                   f"{self.timeout_s:g} s: {getattr(exc, 'reason', exc)}") from None
        if len(raw) > self.max_response_bytes:
            raise SdkFunctionError(f"the SDK app at {url} answered more than "
                                   f"{self.max_response_bytes} bytes (the response size limit)")
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")[:500]
        return Answer(status, {k.lower(): v for k, v in got.items()}, decoded)

    # -- the memo --------------------------------------------------------------------------
    def _memo(self, inv: "Invocation") -> tuple[dict, list[str], dict]:
        """The SDK's ``steps`` (hashed id → result), its completion order, and the rows of
        steps still pending (to re-park on), resolving those whose time has come."""
        now = inv.now()
        steps: dict[str, dict] = {}
        order: list[tuple[int, int, str]] = []
        pending: dict = {}
        for row in inv.stored_steps():
            if row.status == StepStatus.SLEEPING and row.wake_at is not None and row.wake_at <= now:
                inv.checkpoint(ops.SleepDone(key=row.key, name=row.name, started_at=row.started_at,
                                             wake_at=row.wake_at), defer=True)
                row = _resolved(row, status=StepStatus.COMPLETED, output=None, ended_at=now)
            elif (row.status == StepStatus.WAITING and row.kind == StepKind.WAIT
                  and row.wake_at is not None and row.wake_at <= now):
                inv.clear_wait(row.key)
                inv.checkpoint(ops.WaitTimedOut(key=row.key, name=row.name,
                                                started_at=row.started_at, wake_at=row.wake_at),
                               defer=True)
                row = _resolved(row, status=StepStatus.COMPLETED, output="null", ended_at=now)
            elif (row.status == StepStatus.WAITING and row.kind == StepKind.INVOKE
                  and row.wake_at is not None and row.wake_at <= now):
                error = {"name": "TimeoutError",
                         "message": "the invoked function did not finish before the timeout"}
                inv.checkpoint(ops.StepFailed(key=row.key, name=row.name, error=error,
                                              started_at=row.started_at, kind=StepKind.INVOKE),
                               defer=True)
                row = _resolved(row, status=StepStatus.FAILED, error=json.dumps(error),
                                ended_at=now)
            if row.status == StepStatus.COMPLETED:
                steps[row.key] = {"data": None if row.output is None else json.loads(row.output)}
            elif row.status == StepStatus.FAILED:
                steps[row.key] = {"error": json.loads(row.error or "{}")}
            else:
                pending[row.key] = row
                continue
            order.append((row.ended_at or 0, row.position, row.key))
        return steps, [key for _, _, key in sorted(order)], pending

    def _payload(self, inv: "Invocation", steps: dict, stack: list[str], attempt: int) -> dict:
        return {"event": inv.event.to_dict(), "events": [e.to_dict() for e in inv.context.events],
                "steps": steps, "version": 1, "use_api": False,  # inngest-py requires it here
                "ctx": {"run_id": inv.run_id, "attempt": attempt,
                        "disable_immediate_execution": False, "use_api": False,
                        "stack": {"stack": stack, "current": len(stack)}}}

    # -- the loop --------------------------------------------------------------------------
    def drive(self, inv: "Invocation") -> Outcome:
        url = inv.function.handler.url
        steps, stack, stored_pending = self._memo(inv)
        attempt = max([inv.run.attempt] + [r.attempts for r in stored_pending.values()
                                           if r.status == StepStatus.RETRYING])
        queue = ["step"]
        pending: dict[str, ops.PendingOp] = {}
        for _ in range(MAX_CALLS_PER_EXECUTION):
            if not queue:
                if pending:
                    return Suspended(list(pending.values()))
                queue = ["step"]
            step_id = queue.pop(0)
            inv.flush()  # the previous step's row is committed before the next step starts
            try:
                answer = self.call(_step_url(url, step_id), self._payload(inv, steps, stack, attempt))
            except SdkFunctionError as exc:
                return Errored(exc)
            no_retry = answer.headers.get("x-inngest-no-retry") == "true"
            if answer.status == 200:
                return Completed(answer.body)
            if answer.status != 206:
                error = _error_of(answer.body)
                exc = SdkFunctionError(f"{error['name']}: {error['message']} (HTTP {answer.status} "
                                       "from the SDK app)")
                return Failed(exc) if no_retry else Errored(exc)
            if not isinstance(answer.body, list):
                return Errored(SdkFunctionError("the SDK app answered 206 without a list of step "
                                                f"operations: {str(answer.body)[:200]}"))
            progressed = False
            for op in answer.body:
                outcome = self._apply(inv, op, no_retry, steps, stack, stored_pending, pending, queue)
                if isinstance(outcome, bool):
                    progressed = progressed or outcome
                else:
                    return outcome
            if not queue and not pending and progressed:
                queue.append("step")
            elif not queue and not pending:
                return Errored(SdkFunctionError("the SDK app reported no new step and no result "
                                                f"(answer: {str(answer.body)[:200]})"))
        return Errored(SdkFunctionError(f"more than {MAX_CALLS_PER_EXECUTION} calls to the SDK "
                                        "app in one execution"))

    def _apply(self, inv: "Invocation", op: Any, no_retry: bool, steps: dict, stack: list[str],
               stored_pending: dict, pending: dict, queue: list[str]) -> "bool | Outcome":
        """One step operation of a 206 answer; ``True`` when it added to the memo."""
        if not isinstance(op, dict) or not isinstance(op.get("id"), str):
            return Errored(SdkFunctionError(f"malformed step operation from the SDK app: {op!r}"))
        key, kind = op["id"], op.get("op")
        name = str(op.get("displayName") or op.get("name") or key)[:256]
        opts = op.get("opts") or {}
        if key in steps or key in pending:  # reported again (started, never awaited): one step
            return False
        now = inv.now()
        row = stored_pending.get(key)
        started_at = row.started_at if row is not None else now
        if kind == "StepRun":
            output = inv.account_output(name, encode_output(op.get("data"), what=f"step {name!r}",
                                                            limit=inv.output_limit))
            attempts = (row.attempts if row is not None and row.status == StepStatus.RETRYING else 0) + 1
            inv.checkpoint(ops.StepRun(key=key, name=name, output=output, attempts=attempts,
                                       started_at=started_at), defer=True)
            steps[key] = {"data": op.get("data")}
            stack.append(key)
            return True
        if kind == "StepError":
            error = _error_of(op.get("error"))
            attempts = (row.attempts if row is not None and row.status == StepStatus.RETRYING else 0) + 1
            if no_retry or attempts > inv.function.retries:
                inv.checkpoint(ops.StepFailed(key=key, name=name, error=error, attempts=attempts,
                                              started_at=started_at), defer=True)
                steps[key] = {"error": op.get("error") or error}
                stack.append(key)
                return True
            delay = retry_delay_ms(SdkFunctionError(error["message"]), attempts,
                                   base_ms=inv.settings.retry_base_ms,
                                   max_ms=inv.settings.retry_max_ms, now=now)
            pending[key] = ops.RetryStep(key=key, name=name, wake_at=now + delay, attempts=attempts,
                                         error=error, started_at=started_at)
            return False
        if kind == "StepPlanned":
            if key not in queue:
                queue.append(key)
            return False
        if kind == "Sleep":
            if row is not None:
                wake_at = row.wake_at
            else:
                try:
                    wake_at = _sleep_wake_at(op, opts, now)
                except ValueError as exc:
                    return Failed(StepError(name, f"sleep duration: {exc}"))
                inv.executing_new_step()
            if wake_at <= now:
                inv.checkpoint(ops.SleepDone(key=key, name=name, started_at=started_at,
                                             wake_at=wake_at), defer=True)
                steps[key] = {"data": None}
                stack.append(key)
                return True
            pending[key] = ops.Sleep(key=key, name=name, wake_at=wake_at, started_at=started_at)
            return False
        if kind == "WaitForEvent":  # the SDKs put the awaited event's name in the op's name
            opts = {**opts, "event": opts.get("event") or op.get("name")}
            return self._wait(inv, key, name, opts, row, steps, stack, pending)
        if kind == "InvokeFunction":
            return self._invoke(inv, key, name, opts, row, pending)
        return Errored(SdkFunctionError(f"step {name!r}: operation {kind!r} is not supported by "
                                        "this engine's HTTP driver"))

    def _wait(self, inv, key, name, opts, row, steps, stack, pending) -> "bool | Outcome":
        now = inv.now()
        if row is not None:
            pending[key] = ops.WaitForEvent(key=key, name=name, wake_at=row.wake_at,
                                            started_at=row.started_at, event=opts.get("event", ""),
                                            if_exp=opts.get("if"))
            return False
        event = opts.get("event")
        if not isinstance(event, str) or not event:
            return Failed(StepError(name, "waitForEvent needs an event name"))
        try:
            expires = now + to_ms(opts.get("timeout") or DEFAULT_WAIT_TIMEOUT)
        except ValueError as exc:
            return Failed(StepError(name, f"waitForEvent timeout: {exc}"))
        inv.executing_new_step()
        wait = ops.WaitForEvent(key=key, name=name, wake_at=expires, started_at=now, event=event,
                                if_exp=opts.get("if") or None)
        found = inv.received_event(wait)
        if found is not None:
            inv.account_output(name, found, check=False)
            inv.checkpoint(ops.WaitMatched(key=key, name=name, output=found, started_at=now),
                           defer=True)
            steps[key] = {"data": json.loads(found)}
            stack.append(key)
            return True
        pending[key] = wait
        return False

    def _invoke(self, inv, key, name, opts, row, pending) -> "bool | Outcome":
        now = inv.now()
        if row is not None:
            pending[key] = ops.Invoke(key=key, name=name, wake_at=row.wake_at,
                                      started_at=row.started_at, start=False)
            return False
        fn_id = opts.get("function_id")
        target = self.find_function(fn_id) if (self.find_function and isinstance(fn_id, str)) else None
        if target is None:
            return Failed(StepError(name, f"step.invoke: no function {fn_id!r} is registered"))
        payload = opts.get("payload") or {}
        try:
            expires = now + to_ms(opts.get("timeout") or DEFAULT_WAIT_TIMEOUT)
        except ValueError as exc:
            return Failed(StepError(name, f"step.invoke timeout: {exc}"))
        inv.executing_new_step()
        pending[key] = ops.Invoke(key=key, name=name, wake_at=expires, started_at=now,
                                  function_id=target.id, app_id=target.app_id,
                                  data=payload.get("data") or {})
        return False


__all__ = ["HttpDriver", "SdkFunctionError", "sign"]
