// An Inngest app for the SDK protocol's onFailure, fault and signature tests, served by
// inngest 3.32.7's own `inngest/node` adapter, unchanged.
//   INNGEST_DEV=http://127.0.0.1:8288 node core_app.mjs <port>             (dev mode)
//   INNGEST_DEV=0 INNGEST_BASE_URL=<server> INNGEST_SIGNING_KEY=<key> node core_app.mjs <port>
// EFFECTS_FILE: where the slow step appends one line per execution (its side effect).
// SLOW_STEP_MS: how long the slow step takes (default 1000).
// Prints "listening <port>" once it serves /api/inngest.
import { appendFileSync } from "node:fs";
import { Inngest } from "inngest";
import { createServer } from "inngest/node";

const port = Number(process.argv[2] || 3940);
const inngest = new Inngest({ id: "sdk-core-app" });
const effects = process.env.EFFECTS_FILE;
const slowMs = Number(process.env.SLOW_STEP_MS || 1000);

// Fails for good (no retries); its onFailure handler runs as Inngest runs it: the
// `inngest/function.failed` event, with the error and the original event.
const doomed = inngest.createFunction(
  {
    id: "doomed",
    retries: 0,
    onFailure: async ({ event, error, step }) => {
      return await step.run("note-failure", () => ({
        failed: event.data.function_id,
        run: event.data.run_id,
        message: error.message,
        original: event.data.event.data,
      }));
    },
  },
  { event: "core/doomed" },
  async ({ event, step }) => {
    await step.run("before", () => "ok");
    throw new Error(`doomed ${event.data.id}`);
  },
);

// One slow step with a side effect (counted in EFFECTS_FILE), then a quick one.
const slowStep = inngest.createFunction(
  { id: "slow-step", retries: 2 },
  { event: "core/slow" },
  async ({ event, step }) => {
    const done = await step.run("slow", async () => {
      if (effects) appendFileSync(effects, `${event.data.id}\n`);
      await new Promise((resolve) => setTimeout(resolve, slowMs));
      return { id: event.data.id };
    });
    const after = await step.run("after", () => done.id * 2);
    return { done, after };
  },
);

// Three quick steps around a one-second sleep (the app-down test sends these while it is down).
const steady = inngest.createFunction(
  { id: "steady", retries: 1 },
  { event: "core/steady" },
  async ({ event, step }) => {
    const a = await step.run("a", () => event.data.id + 1);
    await step.sleep("pause", "1s");
    const b = await step.run("b", () => a + 1);
    return { a, b };
  },
);

const server = createServer({ client: inngest, functions: [doomed, slowStep, steady] });
server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
