"""The official Inngest TypeScript SDK (inngest@3.32.7 under Node.js) sends events unchanged.

``tests/js`` pins the SDK; ``.ci/run`` installs it with ``npm ci``. Outside CI the
test skips (with the reason) when Node.js or the installed SDK is missing.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import require_tool, unavailable
from procs import TESTS
from webhelpers import EVENT_KEY, live_stack, wait_for_runs

pytestmark = pytest.mark.integration
JS = TESTS / "js"


def _require_node_sdk() -> str:
    node = require_tool("node", "Node.js is not installed")
    if not (JS / "node_modules" / "inngest" / "package.json").exists():
        unavailable("the inngest SDK is not installed: run (cd tests/js && npm ci)")
    version = json.loads((JS / "node_modules" / "inngest" / "package.json").read_text())["version"]
    assert version == "3.32.7", f"tests/js has inngest {version}, expected 3.32.7"
    return node


def _send(node: str, base: str, key: str, *payloads) -> list[dict]:
    out = subprocess.run([node, "send.mjs", base, key, *map(json.dumps, payloads)], cwd=JS,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "INNGEST_DEV": "1"})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def test_typescript_sdk_single_and_batched_events_start_runs_that_complete(
        tmp_path, postgres_url, redis_url, queue_name):
    node = _require_node_sdk()
    with live_stack(tmp_path, postgres_url, redis_url, queue_name) as (base, procs):
        single, batch, bad, wrong_key = _send(
            node, base, EVENT_KEY,
            {"name": "ts.single", "data": {"tripId": "t-9"}},
            [{"name": "ts.batch", "data": {"i": i}} for i in range(3)],
            {"name": "ts.batch", "data": "not an object"},
        ) + _send(node, base, "wrong-key", {"name": "ts.single"})
        assert len(single["ids"]) == 1 and len(batch["ids"]) == 3
        assert "'data' must be an object" in bad["error"]
        assert "401" in wrong_key["error"] or "event key" in wrong_key["error"]

        runs = wait_for_runs(base, single["ids"] + batch["ids"])
        outputs = sorted((r["output"]["name"], r["output"]["data"].get("i", -1)) for r in runs)
        assert outputs == [("ts.batch", 0), ("ts.batch", 1), ("ts.batch", 2), ("ts.single", -1)]


def test_typescript_sdk_resend_with_the_same_event_id_is_deduplicated(
        tmp_path, postgres_url, redis_url, queue_name):
    node = _require_node_sdk()
    with live_stack(tmp_path, postgres_url, redis_url, queue_name, worker=False) as (base, procs):
        event = {"name": "ts.single", "id": "payment-123-reminder", "data": {}}
        first, again = _send(node, base, EVENT_KEY, event, event)
        assert first["ids"] == again["ids"]
