"""The official Inngest Python SDK sends events to a live gunicorn server, unchanged.

Only the event API base URL points at us. The runs the events start are executed
by a real dramatiq worker on Redis and read back through the REST API.
"""

from __future__ import annotations

import inngest
import pytest
from inngest._internal.errors import SendEventsError  # not re-exported by inngest 0.5

from webhelpers import EVENT_KEY, live_stack, wait_for_runs

pytestmark = pytest.mark.integration


def _client(base: str, key: str = EVENT_KEY) -> inngest.Inngest:
    return inngest.Inngest(app_id="tengo-lugar-py", event_api_base_url=base, is_production=False,
                           event_key=key)


def test_python_sdk_single_and_batched_events_start_runs_that_complete(
        tmp_path, postgres_url, redis_url, queue_name):
    with live_stack(tmp_path, postgres_url, redis_url, queue_name) as (base, procs):
        client = _client(base)
        [single] = client.send_sync(inngest.Event(name="sdk.single", data={"userId": "u-1"}))
        batch = client.send_sync([inngest.Event(name="sdk.batch", data={"i": i}) for i in range(3)])
        assert len(batch) == 3 and len({single, *batch}) == 4

        runs = wait_for_runs(base, [single, *batch])
        outputs = sorted((r["output"]["name"], r["output"]["data"].get("i", -1)) for r in runs)
        assert outputs == [("sdk.batch", 0), ("sdk.batch", 1), ("sdk.batch", 2), ("sdk.single", -1)]
        assert next(r for r in runs if r["event_id"] == single)["output"]["data"] == {"userId": "u-1"}


def test_python_sdk_sees_a_wrong_key_and_a_bad_event_as_errors(
        tmp_path, postgres_url, redis_url, queue_name):
    with live_stack(tmp_path, postgres_url, redis_url, queue_name, worker=False) as (base, procs):
        with pytest.raises(SendEventsError, match="event key"):
            _client(base, key="not-our-key").send_sync(inngest.Event(name="sdk.single"))
        with pytest.raises(SendEventsError, match="reserved prefix"):
            _client(base).send_sync([inngest.Event(name="sdk.batch"),
                                     inngest.Event(name="inngest/forged")])
