"""Sortable unique ids (ULID layout: 48-bit millisecond time + 80 random bits, Crockford base32).

The one place ids are encoded: :func:`new_id` for ids made here, :func:`ulid` for ids
whose entropy comes from elsewhere (the event API's ``x-inngest-event-id-seed``).
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> two characters
_SHIFTS = range(120, -1, -10)  # 13 pairs: 130 bits of characters for the 128-bit value
_MS_MASK = (1 << 48) - 1
ENTROPY_BITS = 80
_ENTROPY_MASK = (1 << ENTROPY_BITS) - 1


def ulid(ms: int, entropy: int) -> str:
    """The 26-character id of time ``ms`` and ``entropy`` (its low 80 bits)."""
    value = (int(ms) & _MS_MASK) << ENTROPY_BITS | (entropy & _ENTROPY_MASK)
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(ms: int | None = None) -> str:
    """A 26-character id that sorts by creation time."""
    ms = int(time.time() * 1000) if ms is None else ms
    return ulid(ms, int.from_bytes(os.urandom(ENTROPY_BITS // 8), "big"))
