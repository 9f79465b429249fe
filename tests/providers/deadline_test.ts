import assert from "node:assert/strict";
import { scheduleDeadline } from "../../src/providers/deadline.ts";

Deno.test("scheduleDeadline() fires after about the given time, shared per slot", async () => {
  const fired: string[] = [];
  const started = performance.now();
  const { promise, resolve } = Promise.withResolvers<void>();
  scheduleDeadline(60, () => fired.push("a"));
  scheduleDeadline(60, () => {
    fired.push("b");
    resolve();
  });
  await promise;
  const elapsed = performance.now() - started;
  assert.deepEqual(fired.sort(), ["a", "b"]);
  assert.ok(elapsed >= 55 && elapsed < 1_000, `fired after ${elapsed} ms`);
});

Deno.test("scheduleDeadline() cancel stops it and clears the timer when its slot empties", async () => {
  let fired = 0;
  const cancelA = scheduleDeadline(30, () => fired++);
  const cancelB = scheduleDeadline(30, () => fired++);
  cancelA();
  cancelA(); // idempotent
  cancelB();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(fired, 0);
  // The op sanitizer would fail this test if a timer were left behind.
});
