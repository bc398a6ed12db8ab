"""Small database helpers for the domain."""

from __future__ import annotations

import contextlib


def in_transaction(db):
    """A transaction, or nothing when the caller already holds one.

    Peewee nests ``atomic()`` as savepoints: two extra statements each time, which a
    job that writes thousands of times inside its own transaction does not need.
    """
    return contextlib.nullcontext() if db.in_transaction() else db.atomic()
