"""Creating Tengo Lugar rows with sensible defaults: used by ``seed-demo`` and by tests.

Every function takes ``now`` (epoch ms) for its timestamps, so callers on a fake
clock get consistent rows.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from tengo_jobs import get_runtime

from .models import (Document, DocumentStatus, DocumentType, Driver, DriverCar, Passenger,
                     Payment, PaymentStatus, Session, Trip, TripPassenger, TripPassengerStatus,
                     TripStatus, User)

_counter = itertools.count(1)
DAY_MS = 86_400_000


def _now(now: int | None) -> int:
    return get_runtime().now() if now is None else now


def make_user(name: str = "Usuario", email: str | None = None, *, is_admin: bool = False,
              now: int | None = None) -> User:
    email = email or f"user{next(_counter)}@example.com"
    return User.create(name=name, email=email, is_admin=is_admin, created_at=_now(now))


def make_session(user: User, *, ttl_ms: int = 30 * DAY_MS, now: int | None = None) -> Session:
    now = _now(now)
    return Session.create(user=user, created_at=now, expires_at=now + ttl_ms)


def make_driver(user: User, *, license_number: str | None = None, now: int | None = None) -> Driver:
    return Driver.create(user=user, license_number=license_number, created_at=_now(now))


def make_car(driver: Driver, plate: str | None = None, *, brand: str = "Volkswagen",
             model: str = "Gol Trend", year: int = 2019, color: str = "gris", seats: int = 4) -> DriverCar:
    plate = plate or f"AE{next(_counter):03d}TL"
    return DriverCar.create(driver=driver, plate=plate, brand=brand, model=model, year=year,
                            color=color, seats=seats)


def make_passenger(user: User, *, now: int | None = None) -> Passenger:
    return Passenger.get_or_create(user=user, defaults={"created_at": _now(now)})[0]


def make_trip(driver: Driver, departure_at: int, *, origin: str = "Córdoba",
              destination: str = "Villa Carlos Paz", status: TripStatus = TripStatus.ACTIVE,
              car: DriverCar | None = None, passengers=(), price: str = "4500.00",
              now: int | None = None) -> Trip:
    now = _now(now)
    trip = Trip.create(driver=driver, car=car, origin=origin, destination=destination,
                       departure_at=departure_at, status=status, seats=max(3, len(passengers)),
                       price_per_seat=Decimal(price), created_at=now)
    for user in passengers:
        TripPassenger.create(trip=trip, passenger=make_passenger(user, now=now),
                             status=TripPassengerStatus.CONFIRMED, created_at=now)
    return trip


def make_payment(user: User, amount: str = "4500.00", *, status: PaymentStatus = PaymentStatus.PENDING,
                 currency: str = "ARS", trip: Trip | None = None, due_at: int | None = None,
                 now: int | None = None) -> Payment:
    now = _now(now)
    return Payment.create(user=user, trip=trip, amount=Decimal(amount), currency=currency,
                          status=status, due_at=due_at, created_at=now, updated_at=now)


def make_document(user: User, *, type: DocumentType = DocumentType.DNI, number: str = "30123456",
                  front_url: str = "https://files.tengolugar.com/dni-frente.jpg",
                  back_url: str | None = "https://files.tengolugar.com/dni-dorso.jpg",
                  expires_at: int | None = None, now: int | None = None) -> Document:
    now = _now(now)
    return Document.create(user=user, type=type, number=number, front_url=front_url,
                           back_url=back_url, expires_at=expires_at, status=DocumentStatus.PENDING,
                           created_at=now, updated_at=now)
