"""tengo_jobs: durable background jobs in the programming model of Inngest.

Declare functions with a :class:`Jobs` client, send events, and let Dramatiq
workers execute them step by step, each step checkpointed in the database.
"""

from .client import Jobs
from .clock import Clock, FakeClock
from .config import Settings
from .errors import (ConfigurationError, EventValidationError, NonRetriableError,
                     OutputTooLargeError, RetryAfterError, StepError, TengoJobsError,
                     ValidationError)
from .events import Event
from .functions import FunctionDef
from .models import RunStatus, StepStatus
from .runtime import Runtime, get_runtime, set_runtime

__all__ = [
    # client
    "Jobs", "Event", "FunctionDef",
    # errors
    "TengoJobsError", "ConfigurationError", "ValidationError", "EventValidationError",
    "OutputTooLargeError", "NonRetriableError", "RetryAfterError", "StepError",
    # runtime
    "Runtime", "Settings", "get_runtime", "set_runtime", "Clock", "FakeClock",
    # statuses
    "RunStatus", "StepStatus",
]

__version__ = "0.1.0"
