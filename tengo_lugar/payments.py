"""The payment gateway: an interface and a deterministic sandbox, chosen by ``PAYMENT_GATEWAY``.

The sandbox decides by amount, so tests and demos know the outcome in advance:

- an amount over ``SandboxGateway.LIMIT`` (ARS 1,000,000) is rejected ("exceeds the limit");
- an amount whose cents are ``.99`` is rejected ("insufficient funds");
- everything else is approved.

Only ARS is accepted. ``PAYMENT_SANDBOX_FAILURE_RATE`` (0..1) makes that share of calls
fail with :class:`GatewayUnavailableError`, as a real gateway does now and then, to
exercise retries. ``process(amount=..., currency=...)`` is the team's
``paymentGateway.process({amount, currency})`` and answers ``{success, transactionId}``
(plus the ``reason`` of a rejection). Transaction ids derive from the idempotency key
(``"{run_id}:process-gateway"``), so a step re-run yields the same transaction, as a
real gateway's idempotency key would, and a new submission of the payment a new one.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import random
import secrets
from decimal import Decimal

from tengo_jobs import ConfigurationError

from .errors import GatewayUnavailableError, InvalidDataError
from .settings import get_settings

SUPPORTED_CURRENCY = "ARS"


@dataclasses.dataclass(frozen=True)
class GatewayResult:
    success: bool
    transaction_id: str
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"success": self.success, "transactionId": self.transaction_id,
                "reason": self.reason}


class PaymentGateway(abc.ABC):
    """What the payment jobs need from a gateway."""

    name: str = "?"

    @abc.abstractmethod
    def process(self, *, amount: Decimal, currency: str,
                idempotency_key: str | None = None) -> GatewayResult:
        """Charge ``amount``; approve or reject it, or raise :class:`GatewayUnavailableError`
        when the gateway cannot answer now (the caller retries). The same
        ``idempotency_key`` charges once."""


class SandboxGateway(PaymentGateway):
    name = "sandbox"
    LIMIT = Decimal("1000000.00")

    def __init__(self, *, failure_rate: float = 0.0, seed: int | None = None):
        if not 0.0 <= failure_rate <= 1.0:
            raise ConfigurationError(f"sandbox failure_rate must be from 0 to 1, got {failure_rate!r}")
        self.failure_rate = failure_rate
        self._rng = random.Random(seed)

    def process(self, *, amount, currency: str, idempotency_key: str | None = None) -> GatewayResult:
        if currency != SUPPORTED_CURRENCY:
            raise InvalidDataError(f"the gateway only accepts {SUPPORTED_CURRENCY}, got {currency!r}",
                                   field="currency")
        amount = Decimal(amount)
        if amount <= 0:
            raise InvalidDataError(f"amount must be positive, got {amount}", field="amount")
        if self.failure_rate and self._rng.random() < self.failure_rate:
            raise GatewayUnavailableError("sandbox gateway unavailable (simulated failure)")
        tx = "sbx_" + (hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
                       if idempotency_key else secrets.token_hex(10))
        if amount > self.LIMIT:
            return GatewayResult(False, tx, f"amount exceeds the limit of {self.LIMIT} ARS")
        if amount % 1 == Decimal("0.99"):
            return GatewayResult(False, tx, "insufficient funds")
        return GatewayResult(True, tx)


GATEWAYS = {"sandbox": SandboxGateway}


def get_gateway(settings=None) -> PaymentGateway:
    """The gateway ``settings.payment_gateway`` names (default: the app's settings)."""
    settings = settings or get_settings()
    name = settings.payment_gateway
    if name not in GATEWAYS:
        raise ConfigurationError(f"PAYMENT_GATEWAY={name!r} is not one of: {', '.join(GATEWAYS)}")
    return SandboxGateway(failure_rate=settings.payment_sandbox_failure_rate)
