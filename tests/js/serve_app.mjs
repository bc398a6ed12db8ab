// An Inngest app served by inngest 3.32.7's own `inngest/node` adapter, unchanged: pointed at
// a tengo_jobs server with INNGEST_DEV=<server url> (the SDK registers with POST /fn/register
// when its serve endpoint gets a PUT; its runs are driven by the server's HTTP driver).
//   INNGEST_DEV=http://127.0.0.1:8288 node serve_app.mjs <port>
// Prints "listening <port>" once it serves /api/inngest.
import { Inngest } from "inngest";
import { createServer } from "inngest/node";

const port = Number(process.argv[2] || 3939);
const inngest = new Inngest({ id: "sdk-test-app" });

// Two steps around a one-second sleep: the second step uses the first one's memoized result.
const twoStepsAndASleep = inngest.createFunction(
  { id: "two-steps-and-a-sleep", name: "Two steps and a sleep" },
  { event: "sdk/hello" },
  async ({ event, step }) => {
    const first = await step.run("first", () => ({ n: event.data.n + 1 }));
    await step.sleep("nap", "1s");
    const second = await step.run("second", () => first.n * 2);
    return { first, second };
  },
);

// A step that fails on its first attempt and succeeds on the second (two attempts recorded).
const failsOnce = inngest.createFunction(
  { id: "fails-once", retries: 2 },
  { event: "sdk/flaky" },
  async ({ step, attempt }) => {
    const result = await step.run("unstable", () => {
      if (attempt === 0) throw new Error("the first attempt fails");
      return { attempt };
    });
    return { result };
  },
);

const server = createServer({ client: inngest, functions: [twoStepsAndASleep, failsOnce] });
server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
