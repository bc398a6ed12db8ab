"""``ApiResponse``: what server actions and notification helpers return.

The shape of Tengo Lugar's web API: ``{success, data, message, error: {message, code}}``.
Expected failures (unknown user, bad input, no session) come back as an error
response instead of an exception, so a caller decides what they mean; a job that
cannot continue without success raises (see :meth:`ApiResponse.raise_for_error`).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ApiError:
    message: str
    code: str

    def to_dict(self) -> dict:
        return {"message": self.message, "code": self.code}


@dataclasses.dataclass(frozen=True)
class ApiResponse:
    success: bool
    data: Any = None
    message: str | None = None
    error: ApiError | None = None

    @classmethod
    def ok(cls, data: Any = None, message: str | None = None) -> "ApiResponse":
        return cls(success=True, data=data, message=message)

    @classmethod
    def fail(cls, message: str, code: str = "ERROR", data: Any = None) -> "ApiResponse":
        return cls(success=False, data=data, error=ApiError(message=message, code=code))

    def to_dict(self) -> dict:
        body: dict[str, Any] = {"success": self.success, "data": self.data}
        if self.message is not None:
            body["message"] = self.message
        if self.error is not None:
            body["error"] = self.error.to_dict()
        return body

    def raise_for_error(self, what: str) -> "ApiResponse":
        """Return self if it succeeded; otherwise raise, non-retriable for input errors."""
        if self.success:
            return self
        from .errors import InvalidDataError, NotFoundError, NotificationError

        assert self.error is not None
        text = f"{what} failed: {self.error.message} ({self.error.code})"
        if self.error.code.endswith("NOT_FOUND"):
            raise NotFoundError(text)
        if self.error.code == "VALIDATION_ERROR":
            raise InvalidDataError(text)
        raise NotificationError(text)
