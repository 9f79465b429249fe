/**
 * Child of listeners_test.ts: serves "ok" on the TCP port and the socket given, under a file
 * descriptor limit the parent sets, and prints the listeners' log lines.
 */
import { parseConfigText } from "../../src/config/mod.ts";
import { startListeners } from "../../src/server/listeners.ts";
import { createLogger } from "../../src/telemetry/mod.ts";

const [port, socket] = Deno.args;
const server = parseConfigText(
  `server: { host: 127.0.0.1, port: ${port}, socket: "${socket}" }\n`,
  () => undefined,
  "t.yaml",
).config.server;
const logger = createLogger({
  level: "info",
  redact: (t) => t,
  write: (line) => Deno.stdout.writeSync(new TextEncoder().encode(line)),
});
await startListeners(() => new Response("ok"), server, logger);
Deno.stdout.writeSync(new TextEncoder().encode("ready\n"));
