// Tengo Lugar's eight functions (seed/functions.mjs) served by inngest 3.32.7's own adapters,
// pointed at a tengo_jobs server with INNGEST_DEV=<server url>:
//   INNGEST_DEV=http://127.0.0.1:8288 node seed_app.mjs <port> [express|node] [function ids...]
// `express` (default) is inngest/express, the adapter the team's Next.js handler mirrors;
// `node` is inngest/node. With function ids, only those are served. GET /recorded lists the
// side effects (emails, notifications, DB writes) the functions made in this process.
// Prints "listening <port>" once it serves /api/inngest.
import http from "node:http";
import express from "express";
import { serve as serveExpress } from "inngest/express";
import { serve as serveNode } from "inngest/node";
import { inngest } from "./seed/inngest.mjs";
import { functions as all } from "./seed/functions.mjs";
import { recorded } from "./seed/fakes.mjs";

const [portArg, adapter = "express", ...only] = process.argv.slice(2);
const port = Number(portArg || 3940);
const functions = only.length ? all.filter((fn) => only.includes(fn.id())) : all;

const sendRecorded = (res) => {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify(recorded));
};

let server;
if (adapter === "express") {
  const app = express();
  app.use(express.json({ limit: "4mb" }));
  app.use("/api/inngest", serveExpress({ client: inngest, functions }));
  app.get("/recorded", (req, res) => sendRecorded(res));
  server = http.createServer(app);
} else if (adapter === "node") {
  const handler = serveNode({ client: inngest, functions });
  server = http.createServer((req, res) => {
    if (req.url === "/recorded") return sendRecorded(res);
    if (req.url.startsWith("/api/inngest")) return handler(req, res);
    res.writeHead(404).end();
  });
} else {
  throw new Error(`unknown adapter ${adapter}: express or node`);
}
server.listen(port, "127.0.0.1", () => console.log(`listening ${port} (${adapter}, ${functions.length} functions)`));
