/** The embedded state file: made readable by its user only; an existing one keeps its mode. */
import assert from "node:assert/strict";
import { openStateDb } from "../../src/state/sqlite.ts";

Deno.test("openStateDb(): a new state file (and its -wal, -shm) is readable by this user only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.db`;
    const db = openStateDb(path);
    db.exec("CREATE TABLE t (x INTEGER)");
    db.exec("INSERT INTO t VALUES (1)");
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      const mode = (await Deno.stat(f)).mode! & 0o777;
      assert.equal(mode, 0o600, `${f}: ${mode.toString(8)}`);
    }
    db.close();
    // An operator's own mode stays.
    const shared = `${dir}/shared.db`;
    await Deno.writeFile(shared, new Uint8Array(0), { mode: 0o640 });
    await Deno.chmod(shared, 0o640);
    openStateDb(shared).close();
    assert.equal((await Deno.stat(shared)).mode! & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
