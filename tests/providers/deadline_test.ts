import assert from "node:assert/strict";
import { armedTimers, scheduleDeadline } from "../../src/providers/deadline.ts";

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

Deno.test("scheduleDeadline() cancel stops it", async () => {
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

Deno.test("deadlines that are left before they are due arm one timer, not one per slot", () => {
  const before = armedTimers();
  // 40 requests, each answered before its deadline, in 40 different 25 ms slots.
  for (let i = 0; i < 40; i++) scheduleDeadline(400 + i * 25, () => {})();
  assert.ok(armedTimers() - before <= 1, `${armedTimers() - before} timers armed`);
});

Deno.test("a deadline behind cancelled ones still fires, and an earlier one arms its own timer", async () => {
  const fired: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  const started = performance.now();
  scheduleDeadline(30, () => fired.push("cancelled"))();
  scheduleDeadline(120, () => {
    fired.push("late");
    resolve();
  });
  // Scheduled after the 120 ms one, due before it: not held back until 120 ms.
  scheduleDeadline(40, () => fired.push(`early ${Math.round(performance.now() - started)}`));
  await promise;
  assert.equal(fired.length, 2);
  assert.match(fired[0]!, /^early (\d+)$/);
  assert.ok(Number(fired[0]!.slice(6)) < 110, fired[0]!);
  assert.equal(fired[1], "late");
  assert.ok(performance.now() - started >= 115);
});
