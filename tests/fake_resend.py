"""A local fake of Resend's HTTP API: a real HTTP server in a thread, for the real ``resend`` SDK.

It records every request (method, path, headers, JSON body), answers ``POST /emails``
and ``POST /emails/batch`` as Resend does, replays the first answer for a repeated
``Idempotency-Key`` (Resend's idempotency), and can be told to fail the next
requests with a status (429 with ``Retry-After``, 5xx, 422 validation errors).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import uuid


@dataclasses.dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # lower-cased names
    body: object


@dataclasses.dataclass
class _Failure:
    status: int
    name: str
    message: str
    headers: dict


class FakeResend:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._by_key: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-resend",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, *, name: str = "application_error", message: str = "boom",
                  headers: dict | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and Resend's error body."""
        with self._lock:
            self._failures.extend(_Failure(status, name, message, headers or {})
                                  for _ in range(times))

    def emails(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/emails")]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- the server ----------------------------------------------------------------------
    def _answer(self, method: str, path: str, headers: dict, body) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))
            if self._failures:
                f = self._failures.pop(0)
                return f.status, {"statusCode": f.status, "name": f.name, "message": f.message}, f.headers
            if method != "POST" or path not in ("/emails", "/emails/batch"):
                return 404, {"statusCode": 404, "name": "not_found", "message": "Not found"}, {}
            if not headers.get("authorization", "").startswith("Bearer re_"):
                return 401, {"statusCode": 401, "name": "missing_api_key",
                             "message": "Missing API key"}, {}
            key = headers.get("idempotency-key")
            if key and key in self._by_key:
                return 200, self._by_key[key], {}
            if path == "/emails":
                answer = {"id": str(uuid.uuid4())}
            else:
                answer = {"data": [{"id": str(uuid.uuid4())} for _ in body]}
            if key:
                self._by_key[key] = answer
            return 200, answer, {}

    def _handler(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer, extra = fake._answer(self.command, self.path, headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _serve

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler
