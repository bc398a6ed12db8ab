"""Tengo Lugar's tables: users and sessions, documents, payments, trips and who rides them,
drivers and their cars, in-app notifications, the email outbox, and the error log.

They live in the engine's database (:class:`tengo_jobs.AppModel`) and are migrated with
it: the app's :class:`~tengo_jobs.Extension` lists them, so ``tengo-jobs migrate`` and
every process that migrates at boot create them. Times are epoch milliseconds (UTC), as in the engine's tables,
so SQLite and PostgreSQL store the same values and comparisons need no time-zone care;
money is a ``Decimal`` with two places, in ``currency`` (always ``ARS`` today).
"""

from __future__ import annotations

import enum
import json
import secrets
from decimal import Decimal

import peewee as pw

from tengo_jobs import AppModel, EnumField, new_id


def _id() -> str:
    return new_id()


class DocumentStatus(str, enum.Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"


class DocumentType(str, enum.Enum):
    DNI = "DNI"                        # national identity card
    DRIVER_LICENSE = "DRIVER_LICENSE"
    CAR_INSURANCE = "CAR_INSURANCE"
    CAR_REGISTRATION = "CAR_REGISTRATION"  # "cédula verde"


class PaymentStatus(str, enum.Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class TripStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class TripPassengerStatus(str, enum.Enum):
    CONFIRMED = "CONFIRMED"
    PENDING = "PENDING"
    CANCELLED = "CANCELLED"


class User(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    email = pw.CharField(max_length=320, unique=True)
    name = pw.CharField(max_length=200)
    phone = pw.CharField(max_length=40, null=True)
    is_admin = pw.BooleanField(default=False)
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_users"

    def to_dict(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name, "phone": self.phone,
                "isAdmin": self.is_admin, "createdAt": self.created_at}


class Session(AppModel):
    """A signed-in user's bearer token (what the web app's auth would hand out)."""

    token = pw.CharField(primary_key=True, max_length=64, default=lambda: secrets.token_urlsafe(32))
    user = pw.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = pw.BigIntegerField()
    expires_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_sessions"


class Document(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    user = pw.ForeignKeyField(User, backref="documents", on_delete="CASCADE")
    type = EnumField(DocumentType, max_length=24)
    number = pw.CharField(max_length=40)
    front_url = pw.CharField(max_length=1000)
    back_url = pw.CharField(max_length=1000, null=True)
    expires_at = pw.BigIntegerField(null=True)
    status = EnumField(DocumentStatus, default=DocumentStatus.PENDING, index=True)
    failure_reason = pw.TextField(null=True)
    verified_at = pw.BigIntegerField(null=True)
    created_at = pw.BigIntegerField()
    updated_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_documents"

    def to_dict(self) -> dict:
        """The row as the jobs and actions return it (camelCase, as Tengo Lugar's API does)."""
        return {"id": self.id, "userId": self.user_id, "type": self.type.value,
                "number": self.number, "frontUrl": self.front_url, "backUrl": self.back_url,
                "expiresAt": self.expires_at, "status": self.status.value,
                "failureReason": self.failure_reason, "verifiedAt": self.verified_at,
                "createdAt": self.created_at, "updatedAt": self.updated_at}


class Driver(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    user = pw.ForeignKeyField(User, backref="driver", unique=True, on_delete="CASCADE")
    license_number = pw.CharField(max_length=40, null=True)
    license_verified = pw.BooleanField(default=False)
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_drivers"


class DriverCar(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    driver = pw.ForeignKeyField(Driver, backref="cars", on_delete="CASCADE")
    plate = pw.CharField(max_length=16, unique=True)
    brand = pw.CharField(max_length=60)
    model = pw.CharField(max_length=60)
    year = pw.IntegerField()
    color = pw.CharField(max_length=30, null=True)
    seats = pw.IntegerField(default=4)

    class Meta:
        table_name = "tl_driver_cars"


class Trip(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    driver = pw.ForeignKeyField(Driver, backref="trips", on_delete="CASCADE")
    car = pw.ForeignKeyField(DriverCar, null=True, on_delete="SET NULL")
    origin = pw.CharField(max_length=200)
    destination = pw.CharField(max_length=200)
    departure_at = pw.BigIntegerField(index=True)
    status = EnumField(TripStatus, default=TripStatus.ACTIVE, index=True, max_length=16)
    seats = pw.IntegerField(default=3)
    price_per_seat = pw.DecimalField(max_digits=12, decimal_places=2, default=0)
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_trips"
        indexes = ((("status", "departure_at"), False),)


class Passenger(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    user = pw.ForeignKeyField(User, backref="passenger", unique=True, on_delete="CASCADE")
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_passengers"


class TripPassenger(AppModel):
    id = pw.AutoField()
    trip = pw.ForeignKeyField(Trip, backref="passengers", on_delete="CASCADE")
    passenger = pw.ForeignKeyField(Passenger, backref="trips", on_delete="CASCADE")
    status = EnumField(TripPassengerStatus, default=TripPassengerStatus.CONFIRMED)
    seats = pw.IntegerField(default=1)
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_trip_passengers"
        indexes = ((("trip", "passenger"), True),)


class Payment(AppModel):
    id = pw.CharField(primary_key=True, max_length=32, default=_id)
    user = pw.ForeignKeyField(User, backref="payments", on_delete="CASCADE")
    trip = pw.ForeignKeyField(Trip, null=True, backref="payments", on_delete="SET NULL")
    amount = pw.DecimalField(max_digits=12, decimal_places=2)
    currency = pw.CharField(max_length=3, default="ARS")
    status = EnumField(PaymentStatus, default=PaymentStatus.PENDING, index=True)
    gateway_transaction_id = pw.CharField(max_length=64, null=True)
    failure_reason = pw.TextField(null=True)
    due_at = pw.BigIntegerField(null=True)
    created_at = pw.BigIntegerField()
    updated_at = pw.BigIntegerField()

    class Meta:
        table_name = "tl_payments"

    def to_dict(self) -> dict:
        """The row as the jobs return it (camelCase; the amount as text with two decimals)."""
        return {"id": self.id, "userId": self.user_id, "tripId": self.trip_id,
                "amount": str(Decimal(str(self.amount)).quantize(Decimal("0.01"))),
                "currency": self.currency, "status": self.status.value,
                "gatewayTransactionId": self.gateway_transaction_id,
                "failureReason": self.failure_reason, "dueAt": self.due_at,
                "createdAt": self.created_at, "updatedAt": self.updated_at}


class Notification(AppModel):
    id = pw.AutoField()
    user = pw.ForeignKeyField(User, backref="notifications", on_delete="CASCADE")
    title = pw.CharField(max_length=200)
    message = pw.TextField()
    type = pw.CharField(max_length=40)
    link = pw.CharField(max_length=500, null=True)
    metadata = pw.TextField(null=True)  # JSON object
    read = pw.BooleanField(default=False)
    created_at = pw.BigIntegerField()
    # Set by jobs ("{run_id}:{step_key}"): a step re-run after a crash notifies nobody twice.
    idempotency_key = pw.CharField(max_length=400, null=True)

    class Meta:
        table_name = "tl_notifications"
        indexes = ((("user", "read"), False), (("idempotency_key", "user"), True))

    @property
    def metadata_dict(self) -> dict | None:
        return None if self.metadata is None else json.loads(self.metadata)

    def to_dict(self) -> dict:
        return {"id": self.id, "userId": self.user_id, "title": self.title,
                "message": self.message, "type": self.type, "link": self.link,
                "metadata": self.metadata_dict, "read": self.read, "createdAt": self.created_at}


class EmailOutbox(AppModel):
    """Every email the app sent: to the local outbox (no ``RESEND_API_KEY``) or through Resend.

    ``(idempotency_key, batch_index)`` is unique, so a step re-run after a crash that
    sends the same email again records it once.
    """

    id = pw.AutoField()
    to_address = pw.CharField(max_length=320)
    subject = pw.CharField(max_length=300)
    template = pw.CharField(max_length=60)
    html = pw.TextField()
    text = pw.TextField()
    idempotency_key = pw.CharField(max_length=400, null=True)
    batch_index = pw.IntegerField(default=0)
    run_id = pw.CharField(max_length=32, null=True, index=True)
    step_key = pw.CharField(max_length=300, null=True)
    transport = pw.CharField(max_length=16)  # "outbox" | "resend"
    provider_id = pw.CharField(max_length=100, null=True)
    created_at = pw.BigIntegerField(index=True)

    class Meta:
        table_name = "tl_email_outbox"
        indexes = ((("idempotency_key", "batch_index"), True),)


class ErrorLog(AppModel):
    """What ``log_error`` records: a message and its context (JSON), for the admins to read."""

    id = pw.AutoField()
    message = pw.TextField()
    context = pw.TextField(null=True)  # JSON object
    created_at = pw.BigIntegerField(index=True)
    # Set by jobs ("{run_id}:{step_key}"): a handler re-run after a crash logs once.
    idempotency_key = pw.CharField(max_length=400, null=True, unique=True)

    class Meta:
        table_name = "tl_error_logs"

    @property
    def context_dict(self) -> dict | None:
        return None if self.context is None else json.loads(self.context)


APP_MODELS = [User, Session, Document, Driver, DriverCar, Trip, Passenger, TripPassenger,
              Payment, Notification, EmailOutbox, ErrorLog]
