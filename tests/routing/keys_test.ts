import assert from "node:assert/strict";
import type { ProviderKeyConfig } from "../../src/config/mod.ts";
import { pickKey } from "../../src/routing/mod.ts";
import { prng as seededRandom } from "../helpers/prng.ts";

function key(id: string, weight = 1, models: string[] = []): ProviderKeyConfig {
  return { id, key: `sk-${id}-0000`, weight, models };
}

const NEVER: () => number = () => {
  throw new Error("random() should not be needed");
};

Deno.test("pickKey() returns null when no key admits the model", () => {
  assert.equal(pickKey([], "gpt-4o", NEVER), null);
  const keys = [key("a", 1, ["gpt-4o"]), key("b", 1, ["gpt-4o-mini"])];
  assert.equal(pickKey(keys, "o3", NEVER), null);
  // No model named (a passthrough listing): a key kept for no model, as Butter picks one;
  // only when every key is kept for some model does one of those serve.
  assert.equal(pickKey([key("a", 1, ["gpt-4o"])], "", NEVER)?.id, "a");
  for (let i = 0; i < 20; i++) {
    const any = pickKey([key("kept", 1, ["gpt-4o"]), key("free", 1)], "", seededRandom(i));
    assert.equal(any?.id, "free");
  }
});

Deno.test("pickKey() filters keys by their models allowlist", () => {
  const only4o = key("only-4o", 5, ["gpt-4o"]);
  const wildcard = key("any", 1);
  // Only "any" admits gpt-4o-mini: no draw needed.
  assert.equal(pickKey([only4o, wildcard], "gpt-4o-mini", NEVER), wildcard);
  assert.equal(pickKey([only4o], "gpt-4o", NEVER), only4o);
  // Both admit gpt-4o: the draw decides among them.
  const random = seededRandom(1);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    seen.add(pickKey([only4o, wildcard], "gpt-4o", random)?.id ?? "none");
  }
  assert.deepEqual([...seen].sort(), ["any", "only-4o"]);
});

Deno.test("pickKey() spreads draws by weight within 5%", async (t) => {
  const cases: [string, number[]][] = [
    ["1:3", [1, 3]],
    ["1:1:2", [1, 1, 2]],
    ["0.5:2:7.5", [0.5, 2, 7.5]],
  ];
  for (const [label, weights] of cases) {
    await t.step(label, () => {
      const keys = weights.map((w, i) => key(`k${i}`, w));
      const counts = new Map<string, number>();
      const random = seededRandom(42);
      const draws = 10_000;
      for (let i = 0; i < draws; i++) {
        const k = pickKey(keys, "gpt-4o", random);
        assert.ok(k);
        counts.set(k.id, (counts.get(k.id) ?? 0) + 1);
      }
      const total = weights.reduce((a, b) => a + b, 0);
      keys.forEach((k, i) => {
        const expected = draws * (weights[i] ?? 0) / total;
        const got = counts.get(k.id) ?? 0;
        assert.ok(
          Math.abs(got - expected) <= expected * 0.05,
          `${k.id}: ${got} draws, expected ${expected} ± 5%`,
        );
      });
    });
  }
});

Deno.test("pickKey() maps the ends of random()'s range to the first and last key", () => {
  const keys = [key("a", 1), key("b", 1), key("c", 2)];
  assert.equal(pickKey(keys, "m", () => 0)?.id, "a");
  assert.equal(pickKey(keys, "m", () => 0.4999)?.id, "b");
  assert.equal(pickKey(keys, "m", () => 0.5)?.id, "c");
  assert.equal(pickKey(keys, "m", () => 0.9999999)?.id, "c");
});
