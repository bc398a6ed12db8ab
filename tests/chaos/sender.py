"""R6's sender process: ``python -m chaos.sender BASE PLAN OUT --threads N``.

``PLAN`` is a JSON list of batches (each a list of event ids); the process splits it
between its threads, which POST each batch to ``BASE/e/<key>`` as ``chaos/dup`` events
with those ids, retrying on 5xx and connection errors as an SDK would (the same batch
again, up to 30 times). Every attempt's answer goes to ``OUT`` as one JSON line:
``{"ids": [...], "status": 200 | 503 | "ConnectionError", "returned": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time

import requests

from webhelpers import EVENT_KEY


def _send_all(base: str, batches: list[list[str]], out, lock: threading.Lock) -> None:
    session = requests.Session()
    for batch in batches:
        events = [{"name": "chaos/dup", "id": event_id, "data": {"id": event_id}}
                  for event_id in batch]
        for attempt in range(30):
            try:
                r = session.post(f"{base}/e/{EVENT_KEY}", json=events, timeout=30)
                status = r.status_code
                returned = r.json().get("ids") if status == 200 else None
            except requests.RequestException as exc:
                status, returned = type(exc).__name__, None
            with lock:
                out.write(json.dumps({"ids": batch, "status": status, "returned": returned}) + "\n")
            if status == 200 or (isinstance(status, int) and 400 <= status < 500):
                break
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("plan")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with open(args.plan) as f:
        batches = json.load(f)
    lock = threading.Lock()
    with open(args.out, "w") as out:
        threads = [threading.Thread(target=_send_all, args=(args.base, batches[i::args.threads],
                                                           out, lock))
                   for i in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


if __name__ == "__main__":
    main()
