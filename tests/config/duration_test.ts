import assert from "node:assert/strict";
import { parseDuration } from "../../src/config/duration.ts";

Deno.test("parseDuration() reads single-unit durations as milliseconds", async (t) => {
  const cases: [string, number][] = [
    ["250ms", 250],
    ["5s", 5_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["0", 0],
    ["0s", 0],
    ["1.5s", 1_500],
    [" 5s ", 5_000],
  ];
  for (const [input, ms] of cases) {
    await t.step(JSON.stringify(input), () => assert.equal(parseDuration(input), ms));
  }
});

Deno.test("parseDuration() adds up compound Go-style durations", () => {
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1h2m3s"), 3_723_000);
  assert.equal(parseDuration("1s500ms"), 1_500);
});

Deno.test("parseDuration() takes a bare number as seconds", () => {
  assert.equal(parseDuration(30), 30_000);
  assert.equal(parseDuration(0), 0);
  assert.equal(parseDuration(0.25), 250);
});

Deno.test("parseDuration() returns null for anything that is not a duration", async (t) => {
  const bad: (string | number)[] = [
    "",
    "   ",
    "abc",
    "5x",
    "5 s",
    "-5s",
    "s",
    "5s garbage",
    "1m30",
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ];
  for (const input of bad) {
    await t.step(String(JSON.stringify(input) ?? input), () => {
      assert.equal(parseDuration(input), null);
    });
  }
});
