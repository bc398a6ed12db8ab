"""tengo_jobs: durable background jobs in the programming model of Inngest.

Declare functions with a :class:`Jobs` client, send events, and let Dramatiq
workers execute them step by step, each step checkpointed in the database.
Applications add their own tables, web pages and CLI commands with an
:class:`Extension`.
"""

from .client import Jobs, RunResult
from .clock import Clock, FakeClock
from .config import Settings
from .durations import ms_to_iso, to_epoch_ms, to_ms
from .errors import (ConfigurationError, EventValidationError, NonRetriableError,
                     OutputTooLargeError, RetryAfterError, StepError, TengoJobsError,
                     ValidationError)
from .core.events import Event
from .core.extensions import Extension
from .core.functions import FunctionDef
from .engine.invocation import Context
from .engine.steps import Step
from .engine.steps_async import AsyncStep
from .ids import new_id
from .middleware import Middleware
from .process.web.auth import require_dashboard
from .runtime import Runtime, boot, get_runtime, set_runtime
from .store import AppModel, EnumField, RunStatus, StepStatus, bulk_insert

__all__ = [
    # declaring functions and sending events
    "Jobs", "Event", "FunctionDef",
    # what a handler receives: handler(ctx: Context, step: Step) or, async, step: AsyncStep
    "Context", "Step", "AsyncStep",
    # a run's result from Python (Jobs.get_run / wait_for_run)
    "RunResult",
    # hooks around executions, steps and sends: Jobs(middleware=[...])
    "Middleware",
    # errors
    "TengoJobsError", "ConfigurationError", "ValidationError", "EventValidationError",
    "OutputTooLargeError", "NonRetriableError", "RetryAfterError", "StepError",
    # the process runtime
    "Runtime", "Settings", "boot", "get_runtime", "set_runtime", "Clock", "FakeClock",
    # statuses
    "RunStatus", "StepStatus",
    # building an application on the engine (tables, pages, commands)
    "Extension", "AppModel", "EnumField", "bulk_insert", "require_dashboard", "new_id",
    # time
    "to_ms", "to_epoch_ms", "ms_to_iso",
]

__version__ = "0.1.0"
