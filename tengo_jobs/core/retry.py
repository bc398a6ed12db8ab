"""Retry delays: exponential backoff with jitter, or what a ``RetryAfterError`` asks for."""

from __future__ import annotations

import datetime as dt
import random

from ..durations import datetime_to_ms, to_ms
from ..errors import RetryAfterError


def backoff_ms(attempt: int, *, base_ms: int, max_ms: int, rng: random.Random | None = None) -> int:
    """Delay before retry number ``attempt`` (1 = first retry): base·2^(attempt-1), equal jitter."""
    uniform = rng.uniform if rng is not None else random.uniform
    ceiling = min(max_ms, base_ms * (2 ** max(0, attempt - 1)))
    return int(ceiling / 2 + uniform(0, ceiling / 2))


def retry_delay_ms(exc: BaseException, attempt: int, *, base_ms: int, max_ms: int, now: int) -> int:
    """How long to wait before the next attempt after ``exc``."""
    if isinstance(exc, RetryAfterError) and exc.delay is not None:
        delay = exc.delay
        if isinstance(delay, dt.datetime):
            return max(0, datetime_to_ms(delay) - now)
        try:
            return to_ms(delay)
        except ValueError:
            pass
    return backoff_ms(attempt, base_ms=base_ms, max_ms=max_ms)
