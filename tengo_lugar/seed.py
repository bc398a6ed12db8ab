"""``tengo-jobs seed-demo``: Tengo Lugar demo data, so every function has real work in ``tengo-jobs dev``.

Creates an admin, two drivers with cars, four passengers, trips departing tomorrow
(Buenos Aires) with confirmed passengers — the next 09:00 reminder finds them — and
next week, pending payments (one declined by the sandbox), a pending document, and a
session token per user for the HTTP actions. Running it twice creates nothing new.
"""

from __future__ import annotations

import json
import shlex

import click

from tengo_jobs import get_runtime

from .factories import (make_car, make_document, make_driver, make_payment, make_session,
                        make_trip, make_user)
from .models import User
from .trips import format_local, local_day_bounds

ADMIN_EMAIL = "admin@demo.tengolugar.com"
HOUR = 3_600_000


def seed_demo(runtime, *, now: int | None = None) -> dict:
    """Create the demo rows; returns what was made (``{"created": False}`` if they exist)."""
    now = runtime.now() if now is None else now
    if User.get_or_none(User.email == ADMIN_EMAIL) is not None:
        return {"created": False}
    with runtime.db.atomic():
        admin = make_user("Admin Tengo Lugar", ADMIN_EMAIL, is_admin=True, now=now)
        drivers = []
        for name, email, plate, brand, model in (
                ("Carlos Gómez", "carlos@demo.tengolugar.com", "AE123TL", "Volkswagen", "Gol Trend"),
                ("Valeria Ruiz", "valeria@demo.tengolugar.com", "AF456TL", "Fiat", "Cronos")):
            user = make_user(name, email, now=now)
            driver = make_driver(user, now=now)
            drivers.append((user, driver, make_car(driver, plate, brand=brand, model=model)))
        riders = [make_user(name, email, now=now) for name, email in (
            ("Lucía Pérez", "lucia@demo.tengolugar.com"), ("Martín López", "martin@demo.tengolugar.com"),
            ("Sofía Díaz", "sofia@demo.tengolugar.com"), ("Joaquín Romero", "joaquin@demo.tengolugar.com"))]
        tomorrow, _ = local_day_bounds(now, 1)
        next_week, _ = local_day_bounds(now, 7)
        trips = [
            make_trip(drivers[0][1], tomorrow + 8 * HOUR, origin="Córdoba", destination="Villa Carlos Paz",
                      car=drivers[0][2], passengers=riders[:3], now=now),
            make_trip(drivers[1][1], tomorrow + 18 * HOUR, origin="Rosario", destination="Buenos Aires",
                      car=drivers[1][2], passengers=riders[2:], price="12000.00", now=now),
            make_trip(drivers[0][1], next_week + 7 * HOUR, origin="Mendoza", destination="San Juan",
                      car=drivers[0][2], passengers=riders[:2], price="9000.00", now=now),
        ]
        payments = [
            make_payment(riders[0], "4500.00", trip=trips[0], due_at=tomorrow, now=now),
            make_payment(riders[1], "4500.99", trip=trips[0], now=now),  # the sandbox declines .99
            make_payment(riders[3], "12000.00", trip=trips[1], due_at=next_week, now=now),
        ]
        document = make_document(riders[0], now=now)
        sessions = {u.email: make_session(u, now=now).token
                    for u in [admin] + [d[0] for d in drivers] + riders}
    return {
        "created": True,
        "admin": {"id": admin.id, "email": admin.email},
        "drivers": [{"id": d.id, "user": u.email, "car": c.plate} for u, d, c in drivers],
        "passengers": [{"id": u.id, "email": u.email} for u in riders],
        "trips": [{"id": t.id, "route": f"{t.origin} → {t.destination}",
                   "departure": format_local(t.departure_at)} for t in trips],
        "payments": [{"id": p.id, "userId": p.user_id, "amount": str(p.amount),
                      "status": p.status.value} for p in payments],
        "document": document.id,
        "sessions": sessions,
    }


def print_summary(summary: dict, echo=click.echo) -> None:
    if not summary["created"]:
        echo(f"demo data already present ({ADMIN_EMAIL} exists); nothing created")
        return
    echo(f"admin      {summary['admin']['email']}  id={summary['admin']['id']}  "
         "(set ADMIN_USER_ID to this id for unstable-operation alerts)")
    for d in summary["drivers"]:
        echo(f"driver     {d['user']}  car {d['car']}")
    for p in summary["passengers"]:
        echo(f"passenger  {p['email']}  id={p['id']}")
    for t in summary["trips"]:
        echo(f"trip       {t['id']}  {t['route']}  departs {t['departure']} (Buenos Aires)")
    for p in summary["payments"]:
        echo(f"payment    {p['id']}  {p['amount']} ARS  {p['status']}")
    echo(f"document   {summary['document']}  PENDING")
    echo("sessions (Authorization: Bearer <token> for /app/actions/...):")
    for email, token in summary["sessions"].items():
        echo(f"  {email:<32} {token}")
    first = summary["payments"][0]
    echo("try: tengo-jobs send payment.submitted --data "
         + shlex.quote(json.dumps({"paymentId": first["id"], "userId": first["userId"],
                                   "amount": float(first["amount"])})))


@click.command("seed-demo")
def seed_demo_command():
    """Create Tengo Lugar demo data (users, drivers, cars, trips, payments) and print it."""
    runtime = get_runtime()  # booted and migrated by `tengo-jobs` before it calls this
    if runtime.settings.is_production:
        raise click.ClickException("refusing to seed demo data (and print session tokens) with "
                                   "TENGO_ENV=production")
    print_summary(seed_demo(runtime))
