// Step tools of inngest 3.32.7 beyond the seed's step.run/step.sleep, served by inngest/node:
//   INNGEST_DEV=<server> node seed/steps_app.mjs <port>
// Prints "listening <port>" once it serves /api/inngest. GET /calls lists, per function id,
// the stepId of each execution request the server sent ("step", or a planned step's hash).
import http from "node:http";
import { Inngest } from "inngest";
import { serve } from "inngest/node";

const port = Number(process.argv[2] || 3941);
const inngest = new Inngest({ id: "steps-app" });

// A step that throws on the function's first attempt and returns on the second.
const failsOnce = inngest.createFunction(
  { id: "fails-once", retries: 2 },
  { event: "steps/flaky" },
  async ({ step, attempt }) => {
    const value = await step.run("flaky-step", () => {
      if (attempt === 0) throw new Error(`attempt ${attempt} fails`);
      return { attempt };
    });
    return { value };
  },
);

// Waits for the order's approval: the `match` pairs the approval with this run's event.
const awaitsApproval = inngest.createFunction(
  { id: "awaits-approval" },
  { event: "steps/order.placed" },
  async ({ event, step }) => {
    const approval = await step.waitForEvent("wait-for-approval", {
      event: "steps/order.approved", match: "data.orderId", timeout: event.data.timeout || "30s",
    });
    const outcome = await step.run("record-outcome", () => (approval ? "approved" : "expired"));
    return { outcome, approvedBy: approval ? approval.data.by : null };
  },
);

// step.invoke: one function of the app calls another and gets its result.
const child = inngest.createFunction(
  { id: "double-it" },
  { event: "steps/double" },
  async ({ event, step }) => step.run("double", () => ({ doubled: event.data.n * 2 })),
);
const parent = inngest.createFunction(
  { id: "invokes-double" },
  { event: "steps/invoke" },
  async ({ event, step }) => {
    const result = await step.invoke("call-double", { function: child, data: { n: event.data.n } });
    const plusOne = await step.run("plus-one", () => result.doubled + 1);
    return { result, plusOne };
  },
);

// Two steps in parallel (Promise.all), then one after both.
const parallel = inngest.createFunction(
  { id: "parallel-steps" },
  { event: "steps/parallel" },
  async ({ step }) => {
    const [left, right] = await Promise.all([
      step.run("left", () => "L"),
      step.run("right", () => "R"),
    ]);
    const joined = await step.run("join", () => `${left}+${right}`);
    return { joined };
  },
);

const calls = {};
const handler = serve({ client: inngest, functions: [failsOnce, awaitsApproval, child, parent, parallel] });
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/calls") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify(calls));
  }
  if (req.method === "POST") {
    const fnId = url.searchParams.get("fnId");
    (calls[fnId] = calls[fnId] || []).push(url.searchParams.get("stepId"));
  }
  return handler(req, res);
});
server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
