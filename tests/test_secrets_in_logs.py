"""Known secret values planted in the environment never appear in any log line.

A real gunicorn (access log on) and a real dramatiq worker run in production mode
with a planted event key, dashboard password, signing key and Resend key. The
test then does what leaks secrets in practice — the event key in the ``/e/<key>``
URL, the password as bearer and basic credentials, wrong keys, error paths — and
reads every line both processes logged.
"""

from __future__ import annotations

import base64

import inngest
import pytest
import requests

from webhelpers import live_stack, wait_for_runs

pytestmark = pytest.mark.integration

EVENT_KEY = "evtkey-planted-3b7e91c4d2"
PASSWORD = "dashpass-planted-8a6f0e2b"
RESEND_KEY = "re_planted_5d1c7a9e44"
SIGNING_KEY = "signkey-planted-c0ffee77"
SECRETS = [EVENT_KEY, PASSWORD, RESEND_KEY, SIGNING_KEY]


def test_no_planted_secret_appears_in_any_log_line(tmp_path, postgres_url, redis_url, queue_name):
    env = dict(TENGO_EVENT_KEYS=EVENT_KEY, TENGO_DASHBOARD_PASSWORD=PASSWORD,
               RESEND_API_KEY=RESEND_KEY, TENGO_SIGNING_KEY=SIGNING_KEY)
    with live_stack(tmp_path, postgres_url, redis_url, queue_name, **env) as (base, procs):
        auth = {"Authorization": f"Bearer {PASSWORD}"}
        basic = {"Authorization": "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()}
        sdk = inngest.Inngest(app_id="leaky", event_api_base_url=base, is_production=False,
                              event_key=EVENT_KEY)
        ids = sdk.send_sync([inngest.Event(name="secret.test", data={"n": i}) for i in range(2)])
        r = requests.post(f"{base}/api/events", json={"name": "secret.test"},
                          headers={"Authorization": f"Bearer {EVENT_KEY}"}, timeout=10)
        assert r.status_code == 200
        ids += r.json()["ids"]
        # error paths: bad events, a wrong key that embeds the real one, the key in a query string
        assert requests.post(f"{base}/e/{EVENT_KEY}", data=b"{oops", timeout=10).status_code == 400
        assert requests.post(f"{base}/e/x{EVENT_KEY}x", json={"name": "a"}, timeout=10).status_code == 401
        assert requests.post(f"{base}/e/{EVENT_KEY}?key={EVENT_KEY}", json={"name": "a"},
                             timeout=10).status_code == 200
        assert requests.get(f"{base}/api/runs?cursor={PASSWORD}", headers=auth,
                            timeout=10).status_code == 400
        assert requests.get(f"{base}/api/runs", headers=basic, timeout=10).status_code == 200
        assert requests.get(f"{base}/metrics", headers=auth, timeout=10).status_code == 200
        assert requests.get(f"{base}/api/runs",
                            headers={"Authorization": f"Bearer {PASSWORD}-wrong"},
                            timeout=10).status_code == 401
        runs = wait_for_runs(base, ids, headers=auth)  # the worker executed them (and logged)
        assert len(runs) == 3
    # after stop: both processes have flushed and exited
    logs = {proc.log_path.name: proc.log() for proc in procs}
    access_lines = [line for line in logs["gunicorn.log"].splitlines() if '"POST /e/' in line]
    assert len(access_lines) >= 4, logs["gunicorn.log"]  # the access log did log these requests
    assert all("[REDACTED]" in line for line in access_lines)
    for name, text in logs.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            for secret in SECRETS:
                assert secret not in line, f"{name}:{lineno} leaks a planted secret: {line}"
