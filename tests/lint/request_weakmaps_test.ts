/**
 * No WeakMap or WeakSet keyed by a request-scoped object (the exchange, a stream, a
 * request or response): V8's scavenger keeps their entries alive until a full GC, which
 * promotes every request's objects to the old generation. Per-request state goes in a
 * `Slot` / `HeldSlot` (src/slot.ts). Long-lived keys (a config, a runtime, a key record)
 * are fine. Fails with file:line.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { tsFiles } from "./walk.ts";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));
const REQUEST_SCOPED =
  /new Weak(?:Map|Set)<\s*(?:Exchange|ReadableStream|WritableStream|Request|Response|AttemptRecord)\b/;

Deno.test("no WeakMap/WeakSet keyed by a request-scoped object in src/", async () => {
  const found: string[] = [];
  for await (const path of tsFiles(SRC)) {
    const lines = (await Deno.readTextFile(path)).split("\n");
    lines.forEach((line, i) => {
      if (REQUEST_SCOPED.test(line)) {
        found.push(`${path.slice(SRC.length)}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, [], `use a Slot (src/slot.ts):\n${found.join("\n")}`);
});
