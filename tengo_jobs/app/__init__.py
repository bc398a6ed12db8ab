"""Tengo Lugar's domain: the tables, email, notifications and payments its jobs use.

Imported by ``actors/`` (and the web entry point), never by the engine. Importing
this package registers its tables with the engine's migrations.
"""

from . import models  # noqa: F401  (registers the tables)
from .api_response import ApiError, ApiResponse

__all__ = ["ApiResponse", "ApiError", "models"]
