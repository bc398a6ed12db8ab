"""Email templates: Jinja2, an autoescaped HTML part and a plain-text part per template.

``templates/<name>.html`` extends ``base.html``; ``templates/<name>.txt`` is the text
part. Each gets the data its sender passes (the team's ``data``) and ``app_url``, the
web app's address, for its links. Undefined variables are errors (:class:`jinja2.StrictUndefined`), so a job that
forgets a field fails its step with a message naming it instead of mailing a blank.
"""

from __future__ import annotations

import functools
import pathlib

import jinja2

from .errors import InvalidDataError
from .links import APP_URL

TEMPLATE_DIR = pathlib.Path(__file__).with_name("templates")
TEMPLATES = ("document-verification", "welcome", "getting-started", "features")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package; no stat() per email
    )


def render(template: str, data: dict, *, subject: str = "") -> tuple[str, str]:
    """``(html, text)`` of ``template`` filled with ``data``."""
    if template not in TEMPLATES:
        raise InvalidDataError(f"unknown email template {template!r}; "
                               f"the templates are: {', '.join(TEMPLATES)}", field="template")
    if not isinstance(data, dict):
        raise InvalidDataError(f"email data must be a dict, got {type(data).__name__}", field="data")
    env = _environment()
    context = {"subject": subject, "app_url": APP_URL, **data}
    try:
        html = env.get_template(f"{template}.html").render(context)
        text = env.get_template(f"{template}.txt").render(context)
    except jinja2.UndefinedError as exc:
        raise InvalidDataError(f"email template {template!r}: {exc.message}", field="data") from None
    return html, text
