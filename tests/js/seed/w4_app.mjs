// W4 (bench/_w4_funcs.py's four sequential steps) as a TypeScript function, served by
// inngest 3.32.7's inngest/node adapter for bench/sdk_w4.py:
//   INNGEST_DEV=<server> node seed/w4_app.mjs <port>
// GET /calls answers {"posts": N, "maxInFlight": M}: the execution requests received (HTTP
// round trips), and the most that were in progress at once.
import http from "node:http";
import { Inngest } from "inngest";
import { serve } from "inngest/node";

const port = Number(process.argv[2] || 3942);
const inngest = new Inngest({ id: "bench-ts" });

const w4 = inngest.createFunction(
  { id: "w4", retries: 0 },
  { event: "bench.w4ts" },
  async ({ step }) => {
    const a = await step.run("s1", () => ({ step: 1, ok: true }));
    const b = await step.run("s2", () => ({ step: 2, prev: a.step }));
    const c = await step.run("s3", () => ({ step: 3, prev: b.step }));
    return await step.run("s4", () => ({ step: 4, prev: c.step }));
  },
);

let posts = 0;
let inFlight = 0;
let maxInFlight = 0;
const handler = serve({ client: inngest, functions: [w4] });
const server = http.createServer((req, res) => {
  if (req.url === "/calls") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ posts, maxInFlight }));
  }
  if (req.method === "POST") {
    posts += 1;
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on("close", () => { inFlight -= 1; });
  }
  return handler(req, res);
});
server.keepAliveTimeout = 30_000;
server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
