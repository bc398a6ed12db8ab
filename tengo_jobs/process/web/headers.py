"""Security headers on every response: pages, JSON, errors, 401s, 404s, health, metrics.

The dashboard is server-rendered HTML with no inline script or style: stylesheets and two
script files of this origin (``/static/tj/runs.js``, the runs page's live refresh, and
``/static/tj/json-field.js``, which checks JSON fields as they are typed), so the
policy is strict: nothing but this origin's own files, no plugins, no ``<base>`` rewriting, forms posting only here, and no framing
(``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` against clickjacking). A
response that already carries one of these headers (an application's page) keeps its own.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install(app: Flask) -> None:
    app.after_request(add_security_headers)


__all__ = ["install", "add_security_headers", "SECURITY_HEADERS", "CONTENT_SECURITY_POLICY"]
