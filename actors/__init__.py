"""Tengo Lugar's durable functions. ``dramatiq actors`` imports this package.

Each function lives in its own module; importing them here registers them with
the ``jobs`` client, and declaring the client binds the runtime so the Dramatiq
CLI finds the run-executing actor.
"""

from .client import jobs
from . import hello  # noqa: F401  (example function)

__all__ = ["jobs"]
