/**
 * The daemon's sources are ASCII. V8 keeps every module's source in the heap for as long as
 * the process runs (functions compile lazily from it), and Deno's emit of a `.ts` file carries
 * its comments and an inline source map three times its size. One character above U+00FF
 * anywhere in a file (an arrow or an ellipsis in a comment) makes V8 store that whole string
 * two bytes per character: at 96 files that was 3.5 MiB of idle RSS. Write `->`, `...`, and
 * `\u2026` in string literals. Fails with file:line.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { tsFiles } from "./walk.ts";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

Deno.test("src/ is ASCII: module sources stay one byte per character in V8's heap", async () => {
  const found: string[] = [];
  for await (const path of tsFiles(SRC)) {
    const lines = (await Deno.readTextFile(path)).split("\n");
    lines.forEach((line, i) => {
      const at = [...line].findIndex((c) => c.charCodeAt(0) > 0x7f);
      if (at >= 0) found.push(`${path.slice(SRC.length)}:${i + 1}:${at + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, [], `non-ASCII in src/:\n${found.join("\n")}`);
});
