"""The executor: what the Dramatiq actor does with "look at run R now".

It takes the run's lease, loads every stored step in one query, and calls the
handler, which replays stored steps and runs new ones back to back. The run
leaves the executor completed, failed, or suspended (a sleep or a retry
backoff, with a timer row for the scheduler).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING

from . import fastpath
from .errors import Interrupt, LeaseLost, Suspend, UnknownFunctionError, ValidationError
from .events import Event
from .execution import Context, Execution
from .models import Run, Step
from .serde import encode_output, error_dict
from .steps import StepTools

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


class Executor:
    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self._active: dict[str, str] = {}  # lease token -> run id
        self._active_lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- the lease ---------------------------------------------------------------------------
    def _keep_leases(self) -> None:
        """Renew the leases of runs executing in this process, so long steps keep them."""
        interval = max(0.05, self.runtime.settings.lease_ttl_ms / 3000)
        while not self._stopping.wait(interval):
            with self._active_lock:
                active = list(self._active.items())
            now = self.runtime.now()
            ttl = self.runtime.settings.lease_ttl_ms
            for token, run_id in active:
                try:
                    (Run.update(lease_expires_at=now + ttl)
                     .where((Run.id == run_id) & (Run.lease_owner == token)
                            & (Run.lease_expires_at > now)).execute())
                except Exception:  # noqa: BLE001 - retried next round; the fence protects us
                    log.warning("could not renew the lease of run %s", run_id, exc_info=True)

    def _track(self, token: str, run_id: str | None) -> None:
        with self._active_lock:
            if run_id is None:
                self._active.pop(token, None)
                return
            self._active[token] = run_id
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_leases, name="tengo-lease-keeper",
                                                daemon=True)
                self._keeper.start()

    def stop(self) -> None:
        self._stopping.set()

    # -- execution --------------------------------------------------------------------------
    def execute(self, run_id: str) -> str:
        """Execute run ``run_id`` if it is due and free; returns what happened (for tests/logs)."""
        token = uuid.uuid4().hex
        now = self.runtime.now()
        # the lease, the run, its event and its stored steps (one round trip on PostgreSQL)
        loaded = fastpath.acquire_and_load(self.runtime.db, run_id, token, now,
                                           self.runtime.settings.lease_ttl_ms)
        if loaded is None:
            return "skipped"
        self._track(token, run_id)
        try:
            return self._execute_leased(token, *loaded)
        finally:
            self._track(token, None)

    def _execute_leased(self, token: str, run: Run, event: Event, steps: list[Step]) -> str:
        run_id = run.id
        function = self.runtime.registry.find(run.function_id)
        if function is None:
            x = Execution(self.runtime, run, _missing_function(run), token, steps)
            x.fail(UnknownFunctionError(
                f"run {run_id}: function {run.function_id!r} is not registered in this worker"))
            return "failed"
        x = Execution(self.runtime, run, function, token, steps)
        x._event = event
        ctx = Context(event=event, events=[event], run_id=run_id, attempt=run.attempt,
                      function_id=function.id, logger=x.logger)
        try:
            try:
                result = function.handler(ctx, StepTools(x))
            except Suspend as s:
                x.suspend(s)
                return "suspended"
            except Interrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - an uncaught error fails the run
                log.info("run %s (%s) failed: %s: %s", run_id, function.id, type(exc).__name__, exc)
                x.fail(exc)
                return "failed"
            try:
                output = encode_output(result, what=f"function {function.id!r}",
                                       limit=x.output_limit)
            except ValidationError as exc:
                x.fail(exc)
                return "failed"
            x.complete(output)
            return "completed"
        except LeaseLost:
            log.warning("run %s: lease lost; another executor owns it now, stopping here", run_id)
            return "lease-lost"
        except BaseException:
            x.release()
            raise


def _missing_function(run: Run):
    from .functions import FunctionDef

    return FunctionDef(id=run.function_id, app_id=run.app_id, handler=lambda ctx, step: None,
                       is_failure_handler=True)


__all__ = ["Executor", "error_dict"]
