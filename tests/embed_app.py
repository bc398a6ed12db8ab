"""A team's own Flask app with the engine inside it (tests/test_embedding.py starts it as a
process): its own routes, ``jobs.init_app`` in the app factory, ``jobs.launch()``."""

import os

from flask import Flask

from tengo_jobs import Jobs

jobs = Jobs("embed-test")


@jobs.function("greet", event="demo.greet")
def greet(ctx, step):
    name = step.run("upper", lambda: ctx.event.data["name"].upper())
    return {"hello": name}


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["DATABASE_URL"] = os.environ["EMBED_DATABASE_URL"]
    app.config["TENGO_EVENT_KEYS"] = ["team-key-0123456789"]

    @app.get("/")
    def home():
        return "the team's home page"

    @app.post("/orders")
    def orders():
        return {"ordered": True}, 201

    jobs.init_app(app, url_prefix="/jobs")
    return app


app = create_app()
jobs.launch(threads=2)
