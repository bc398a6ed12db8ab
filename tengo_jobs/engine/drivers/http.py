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
is committed before the next call (the next step starts in the SDK).

Signatures (the SDK's ``signDataWithKey`` and ``RequestSignature``, inngest 3.32.7): with
``TENGO_SIGNING_KEY`` set, each request carries ``X-Inngest-Signature: t=<unix seconds>&s=<hex
HMAC-SHA256(key, body + t)>``, ``key`` being the signing key without its ``signkey-<env>-``
prefix (its hex text, not decoded). The SDK verifies the HMAC of its *canonicalized* parsed
body (RFC 8785), so the body we send is RFC 8785 JSON and we sign exactly those bytes. The
SDK signs its answers the same way over the body it sends, with ``t`` in milliseconds; an
answer's signature is checked when present and required in production (``TENGO_ENV=production``,
where the SDK runs in cloud mode and signs); in development an unsigned answer is accepted,
as Inngest's dev server does (an SDK in dev mode signs nothing). A signature older than five
minutes is refused, as the SDK refuses ours.

An app that cannot be reached at all (connection refused or reset, no such host) is retried
with backoff *without* spending the function's retries, for up to
:data:`UNREACHABLE_GRACE_MS` per process and app; past that, it counts as an error of the
function. A timeout or an oversized answer counts at once (the app may have run the step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, cast

import rfc8785

from ...core import ops
from ...core.retry import retry_delay_ms
from ...durations import to_epoch_ms, to_ms
from ...errors import StepError
from ...serde import encode_output
from ...store import StepKind, StepStatus
from .base import Completed, Driver, Errored, Failed, Outcome, Suspended

if TYPE_CHECKING:
    from ..invocation import Invocation
    from ..sdk_sync import SdkEndpoint

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_CALLS_PER_EXECUTION = 1_000
DEFAULT_WAIT_TIMEOUT = "365d"
SDK_HEADERS = {"Content-Type": "application/json", "User-Agent": "tengo-jobs",
               "X-Inngest-Framework": "tengo-jobs", "X-Inngest-Req-Version": "1"}
SIGNATURE_HEADER = "X-Inngest-Signature"
# A signature older than this is refused (the SDK's own limit for ours).
SIGNATURE_MAX_AGE_MS = 5 * 60_000
# How long an unreachable app is retried without spending its functions' retries.
UNREACHABLE_GRACE_MS = 10 * 60_000
UNREACHABLE_BACKOFF_MAX_MS = 15_000
MAX_SDK_STACK_CHARS = 8 * 1024  # an SDK error's stack keeps its last characters
_KEY_PREFIX = re.compile(r"signkey-\w+-")


class SdkFunctionError(Exception):
    """The SDK app answered that the function threw (outside any step), or could not be
    reached / answered something that is not the protocol. ``error_payload``: the SDK's
    own ``{name, message, stack}`` when it reported one — what the run records as its
    error and what an ``onFailure`` handler receives in ``inngest/function.failed``."""

    def __init__(self, message: str, *, error_payload: dict[str, Any] | None = None):
        super().__init__(message)
        self.error_payload = error_payload


class SdkUnreachableError(SdkFunctionError):
    """The app could not be reached at all (connection refused or reset, no such host):
    retried with backoff without spending the function's retries (see :class:`HttpDriver`)."""


class SignatureError(Exception):
    """An ``X-Inngest-Signature`` is missing, malformed, expired or does not match."""


def _mac(body: bytes, signing_key: str, timestamp: str) -> str:
    """The SDK's ``signDataWithKey``: HMAC-SHA256 keyed with the signing key's text minus
    its first ``signkey-<env>-``, over the body then the timestamp, in hex."""
    key = _KEY_PREFIX.sub("", signing_key, count=1)
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def sign(body: bytes, signing_key: str, now_s: int) -> str:
    """Inngest's request signature: ``t=<unix seconds>&s=<hex HMAC-SHA256 of body + t>``."""
    return f"t={now_s}&s={_mac(body, signing_key, str(now_s))}"


def verify_signature(header: str | None, body: bytes, signing_key: str, *, now_ms: int,
                     max_age_ms: int = SIGNATURE_MAX_AGE_MS) -> None:
    """Check ``header`` (``t=<ts>&s=<hex>``) over ``body``: :class:`SignatureError` saying
    what is wrong. ``t`` is in seconds (requests) or milliseconds (the SDK's answers)."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    fields = dict(urllib.parse.parse_qsl(header))
    timestamp, given = fields.get("t", ""), fields.get("s", "")
    if not timestamp.isdigit() or not given:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header (expected t=<time>&s=<hmac>)")
    ts_ms = int(timestamp) if len(timestamp) > 11 else int(timestamp) * 1000
    if now_ms - ts_ms > max_age_ms:
        raise SignatureError(f"{SIGNATURE_HEADER} has expired (signed {(now_ms - ts_ms) // 1000} s "
                             f"ago; the limit is {max_age_ms // 1000} s)")
    if not hmac.compare_digest(_mac(body, signing_key, timestamp), given.lower()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body (not signed with "
                             "this signing key)")


def canonical_json(payload: Any) -> bytes:
    """RFC 8785 JSON (what the SDK re-serializes before checking our signature); plain
    sorted JSON for what RFC 8785 cannot express (integers beyond 2**53)."""
    try:
        return rfc8785.dumps(payload)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _error_of(value: Any) -> dict[str, Any]:
    """``{name, message}`` (and ``stack`` when given) of an error the SDK serialized."""
    if isinstance(value, dict):
        out = {"name": str(value.get("name") or "Error"),
               "message": str(value.get("message") or value.get("error") or "")}
        if isinstance(value.get("stack"), str):
            out["stack"] = value["stack"][-MAX_SDK_STACK_CHARS:]
        return out
    return {"name": "Error", "message": str(value)[:1000]}


def _origin(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: how errors and logs name an app (no query,
    no credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _sleep_wake_at(op: dict[str, Any], opts: dict[str, Any], now: int) -> int:
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
                 find_function: Callable[[str], Any] | None = None,
                 production: bool = False, wall_clock_ms: Callable[[], int] | None = None):
        self.signing_key = signing_key
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        # Looks up an invoked function by id (refreshing synced apps on a miss).
        self.find_function = find_function
        # Production: signatures required both ways (the SDK runs in cloud mode).
        self.production = production
        self.wall_clock_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self._unreachable_since: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- the wire --------------------------------------------------------------------------
    def call(self, url: str, payload: dict[str, Any]) -> Answer:
        if self.production and not self.signing_key:
            raise SdkFunctionError("refused to call the SDK app: TENGO_SIGNING_KEY is not set "
                                   "(signatures are required in production)")
        body = canonical_json(payload)
        headers = dict(SDK_HEADERS, **{"X-Inngest-Server-Kind": "cloud" if self.production
                                       else "dev"})
        if self.signing_key:
            headers[SIGNATURE_HEADER] = sign(body, self.signing_key, self.wall_clock_ms() // 1000)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        where = _origin(url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, raw, got = response.status, response.read(self.max_response_bytes + 1), response.headers
        except urllib.error.HTTPError as exc:
            try:
                status, raw, got = exc.code, exc.read(self.max_response_bytes + 1), exc.headers
            except (OSError, http.client.HTTPException) as read_exc:
                raise self._transport_error(where, read_exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise self._transport_error(where, exc) from None
        if len(raw) > self.max_response_bytes:
            raise SdkFunctionError(f"the SDK app at {where} answered more than "
                                   f"{self.max_response_bytes} bytes (the response size limit)")
        lowered = {k.lower(): v for k, v in got.items()}
        self._check_answer_signature(where, lowered.get(SIGNATURE_HEADER.lower()), raw)
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")[:500]
        return Answer(status, lowered, decoded)

    def _transport_error(self, where: str, exc: BaseException) -> SdkFunctionError:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return SdkFunctionError(f"the SDK app at {where} did not answer within "
                                    f"{self.timeout_s:g} s (the request timeout)")
        if isinstance(reason, (ConnectionError, socket.gaierror, http.client.RemoteDisconnected,
                               http.client.BadStatusLine)) or isinstance(exc, urllib.error.URLError):
            return SdkUnreachableError(f"the SDK app at {where} could not be reached: {reason}")
        return SdkFunctionError(f"the SDK app at {where} broke off its answer: {reason}")

    def _check_answer_signature(self, where: str, header: str | None, raw: bytes) -> None:
        """The answer's ``X-Inngest-Signature``: checked when given (with a key), required
        in production."""
        if not self.signing_key or (not header and not self.production):
            return
        try:
            verify_signature(header, raw, self.signing_key, now_ms=self.wall_clock_ms())
        except SignatureError as exc:
            raise SdkFunctionError(f"the SDK app at {where} answered with a bad signature: "
                                   f"{exc}; the answer was not used") from None

    def _unreachable(self, inv: "Invocation", url: str, exc: SdkFunctionError) -> Outcome:
        """The app cannot be reached: retry the function later without spending a retry,
        backing off, until it has been unreachable for :data:`UNREACHABLE_GRACE_MS`."""
        origin, now = _origin(url), inv.now()
        with self._lock:
            since = self._unreachable_since.setdefault(origin, now)
        down_ms = now - since
        if down_ms >= UNREACHABLE_GRACE_MS:
            return Errored(exc)
        delay = min(UNREACHABLE_BACKOFF_MAX_MS, inv.settings.retry_max_ms,
                    max(inv.settings.retry_base_ms, down_ms // 2))
        log.warning("run %s: %s; trying again in %d ms (not counted as a retry: unreachable "
                    "for %d s so far)", inv.run_id, exc, delay, down_ms // 1000)
        return Suspended([ops.FunctionRetry(wake_at=now + delay, attempt=inv.run.attempt)])

    def _reached(self, url: str) -> None:
        if self._unreachable_since:
            with self._lock:
                self._unreachable_since.pop(_origin(url), None)

    # -- the memo --------------------------------------------------------------------------
    def _memo(self, inv: "Invocation") -> tuple[dict[str, Any], list[str], dict[str, Any]]:
        """The SDK's ``steps`` (hashed id → result), its completion order, and the rows of
        steps still pending (to re-park on), resolving those whose time has come."""
        now = inv.now()
        steps: dict[str, dict[str, Any]] = {}
        order: list[tuple[int, int, str]] = []
        pending: dict[str, Any] = {}
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

    def _payload(self, inv: "Invocation", steps: dict[str, Any], stack: list[str], attempt: int) -> dict[str, Any]:
        return {"event": inv.event.to_dict(), "events": [e.to_dict() for e in inv.context.events],
                "steps": steps, "version": 1, "use_api": False,  # inngest-py requires it here
                "ctx": {"run_id": inv.run_id, "attempt": attempt,
                        "disable_immediate_execution": False, "use_api": False,
                        "stack": {"stack": stack, "current": len(stack)}}}

    # -- the loop --------------------------------------------------------------------------
    def drive(self, inv: "Invocation") -> Outcome:
        url = cast("SdkEndpoint", inv.function.handler).url
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
            except SdkUnreachableError as exc:
                return self._unreachable(inv, url, exc)
            except SdkFunctionError as exc:
                return Errored(exc)
            self._reached(url)
            no_retry = answer.headers.get("x-inngest-no-retry") == "true"
            if answer.status == 200:
                return Completed(answer.body)
            if answer.status != 206:
                error = _error_of(answer.body)
                failure = SdkFunctionError(f"{error['name']}: {error['message']} (HTTP "
                                           f"{answer.status} from the SDK app)", error_payload=error)
                return Failed(failure) if no_retry else Errored(failure)
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

    def _apply(self, inv: "Invocation", op: Any, no_retry: bool, steps: dict[str, Any], stack: list[str],
               stored_pending: dict[str, Any], pending: dict[str, Any], queue: list[str]) -> "bool | Outcome":
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

    def _wait(self, inv: "Invocation", key: str, name: str, opts: dict[str, Any],
              row: Any, steps: dict[str, Any], stack: list[str],
              pending: dict[str, Any]) -> "bool | Outcome":
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

    def _invoke(self, inv: "Invocation", key: str, name: str, opts: dict[str, Any],
                row: Any, pending: dict[str, Any]) -> "bool | Outcome":
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


__all__ = ["HttpDriver", "SdkFunctionError", "SdkUnreachableError", "SignatureError",
           "canonical_json", "sign", "verify_signature"]
