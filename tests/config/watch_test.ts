import assert from "node:assert/strict";
import { look, type WatchState } from "../../src/config/watch.ts";

/** Feed fingerprints one look at a time; return which looks would reload. */
function reloadsFor(initial: string, looks: string[]): number[] {
  let state: WatchState = { last: initial, seen: null };
  const fired: number[] = [];
  looks.forEach((fp, i) => {
    const r = look(state, fp);
    state = r.state;
    if (r.changed) fired.push(i);
  });
  return fired;
}

Deno.test("look(): a new version is loaded only once a second look finds it unchanged", () => {
  // Truncate (size 0), then the whole file: only the settled version loads.
  assert.deepEqual(reloadsFor("1:100:7", ["2:0:7", "3:120:7", "3:120:7", "3:120:7"]), [2]);
  // Unchanged throughout: nothing.
  assert.deepEqual(reloadsFor("1:100:7", ["1:100:7", "1:100:7"]), []);
  // A file that changes on every look never loads half-written.
  assert.deepEqual(reloadsFor("1:100:7", ["2:0:7", "3:50:7", "4:90:7", "4:90:7"]), [3]);
  // Back to the version in force before it settled: no reload.
  assert.deepEqual(reloadsFor("1:100:7", ["2:0:7", "1:100:7", "1:100:7"]), []);
  // Missing (mid-rename) is never a change, and does not count as a look at the new one.
  assert.deepEqual(reloadsFor("1:100:7", ["missing", "2:80:9", "missing", "2:80:9", "2:80:9"]), [
    4,
  ]);
});
