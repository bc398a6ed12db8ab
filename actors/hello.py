"""A trivial example function: two steps and a short sleep."""

from .client import jobs


@jobs.function("hello-world", event="demo/hello")
def hello_world(ctx, step):
    name = step.run("compose", lambda: ctx.event.data.get("name", "world"))
    step.sleep("pause", "1s")
    greeting = step.run("greet", lambda: f"Hello, {name}!")
    return {"greeting": greeting}
