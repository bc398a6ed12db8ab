// The team's src/lib/inngest.ts: one client for the app. SEED_APP_ID names the app (a second
// process serves the same functions under another app id through inngest/node).
import { Inngest } from "inngest";

export const inngest = new Inngest({ id: process.env.SEED_APP_ID || "tengo-lugar" });
