"""Drivers: how a function's handler is run (see :mod:`.base`)."""

from .base import Completed, Crashed, Driver, Errored, Failed, Outcome, Suspended
from .python import PythonDriver
from .python_async import AsyncPythonDriver, EventLoopThread

__all__ = ["Driver", "Outcome", "Completed", "Suspended", "Failed", "Errored", "Crashed",
           "PythonDriver", "AsyncPythonDriver", "EventLoopThread"]
