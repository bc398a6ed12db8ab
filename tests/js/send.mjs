// Sends events to a tengo_jobs server with the official Inngest TypeScript SDK, unchanged:
// only pointed at the server (baseUrl), as the Tengo Lugar web app does.
//   node send.mjs <base-url> <event-key> <json: one event or an array of events>...
// Prints one JSON line per send: {"ids": [...]} or {"error": "..."}.
import { Inngest } from "inngest";

const [baseUrl, eventKey, ...payloads] = process.argv.slice(2);
const inngest = new Inngest({ id: "tengo-lugar-web", baseUrl, eventKey, isDev: true });

for (const payload of payloads) {
  try {
    const result = await inngest.send(JSON.parse(payload));
    console.log(JSON.stringify({ ids: result.ids }));
  } catch (err) {
    console.log(JSON.stringify({ error: String(err && err.message ? err.message : err) }));
  }
}
