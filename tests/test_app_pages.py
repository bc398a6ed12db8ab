"""Tengo Lugar's web additions reach every app the engine builds (web.py and tengo-jobs dev)."""

from __future__ import annotations

import actors  # noqa: F401  (installs tengo_lugar.pages)
from tengo_lugar.email import send_email
from tengo_jobs.process.web import create_app


def test_outbox_page_shows_the_emails_sent_without_resend(tj_runtime):
    send_email("ana@example.com", "Bienvenida", "welcome", {"name": "Ana", "link": "https://tengolugar.example/inicio"},
               idempotency_key="run-1:send-welcome")
    client = create_app(tj_runtime).test_client()
    html = client.get("/outbox").get_data(as_text=True)
    assert "ana@example.com" in html and "Bienvenida" in html
    assert "Email outbox" in client.get("/").get_data(as_text=True)  # linked from the dashboard


def test_server_actions_are_served_by_the_engine_built_app(tj_runtime):
    client = create_app(tj_runtime).test_client()
    answer = client.post("/app/actions/payment-reminder", json={"paymentId": "p", "dueDate": "x"})
    assert answer.status_code == 401  # the route exists and wants a session
