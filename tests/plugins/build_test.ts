/**
 * The committed plugins/*\/plugin.wasm are what `deno task build:plugins` makes from their
 * sources today (the build is deterministic, so bytes are compared).
 */
import { trainGuard } from "../../scripts/train_guard.ts";
import assert from "node:assert/strict";
import { buildPlugins } from "../../scripts/build_plugins.ts";

Deno.test("plugins/*/plugin.wasm are up to date with their sources", async () => {
  const built = await buildPlugins();
  assert.deepEqual(built.map((b) => b.name), [
    "butter-example",
    "example",
    "prompt-injection-guard",
  ]);
  for (const b of built) {
    const committed = await Deno.readFile(b.path);
    assert.ok(
      committed.length === b.bytes.length && committed.every((x, i) => x === b.bytes[i]),
      `${b.path.pathname} is stale: run \`deno task build:plugins\``,
    );
  }
});

Deno.test("the guard's weights.ts is what deno task train:guard makes of the corpus", async () => {
  const { source, summary } = await trainGuard();
  const committed = await Deno.readTextFile(
    new URL("../../plugins/prompt-injection-guard/assembly/weights.ts", import.meta.url),
  );
  assert.ok(
    source === committed,
    `assembly/weights.ts is stale (${summary}): run deno task train:guard, then deno task build:plugins`,
  );
});
