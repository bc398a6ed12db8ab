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


def test_an_email_shows_its_html_sandboxed_its_text_and_where_it_came_from(tj_runtime):
    from tengo_lugar.models import EmailOutbox

    send_email("bo@example.com", "Hola <Bo>", "welcome", {"name": "<script>x()</script>Bo",
                                                         "link": "https://tengolugar.example/i"},
               idempotency_key="run-2:send-welcome")
    [row] = list(EmailOutbox.select())
    row.run_id, row.step_key = "01KDVDNA00A3922QXP0B8AW1QW", "send-welcome"
    row.save()
    client = create_app(tj_runtime).test_client()
    listing = client.get("/outbox").get_data(as_text=True)
    assert "run-2:send-welcome" in listing and "/runs/01KDVDNA00A3922QXP0B8AW1QW" in listing
    page = client.get(f"/outbox/{row.id}").get_data(as_text=True)
    assert f'<iframe class="email" sandbox="" ' in page  # no allow-scripts, no allow-same-origin
    assert f'src="/outbox/{row.id}/html"' in page and "allow-" not in page
    assert "Hola &lt;Bo&gt;" in page and "run-2:send-welcome" in page and "step <code>send-welcome" in page
    assert row.text.splitlines()[0].replace("<", "&lt;").replace(">", "&gt;") in page
    framed = client.get(f"/outbox/{row.id}/html")
    assert framed.status_code == 200 and framed.get_data(as_text=True) == row.html
    policy = framed.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "script-src" not in policy and "default-src 'none'" in policy
    assert framed.headers["X-Frame-Options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in policy
    assert client.get("/outbox/999999").status_code == 404
    assert client.get("/outbox/1e3/html").status_code == 404
