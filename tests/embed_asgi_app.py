"""A team's own FastAPI app with the engine mounted in it (tests/test_embedding.py serves it
with uvicorn): its own routes, ``app.mount("/jobs", jobs.asgi_app())``, and ``jobs.launch()``
/ ``jobs.shutdown()`` in the app's lifespan. Settings come from the environment."""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from tengo_jobs import AsyncStep, Context, Jobs

jobs = Jobs("embed-asgi-test")


@jobs.function("greet-async", event="demo.greet")
async def greet(ctx: Context, step: AsyncStep) -> dict:
    async def upper() -> str:
        return str(ctx.event.data["name"]).upper()

    return {"hello": await step.run("upper", upper)}


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    jobs.launch(threads=2)
    try:
        yield
    finally:
        jobs.shutdown()


app = FastAPI(lifespan=lifespan)


@app.get("/")
def home() -> dict:
    return {"page": "the team's home page"}


@app.post("/orders", status_code=201)
def orders() -> dict:
    return {"ordered": True}


app.mount("/jobs", jobs.asgi_app())
