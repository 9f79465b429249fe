/**
 * The embedded state file (`state.path`): one SQLite database, opened with Deno's built-in
 * `node:sqlite`. WAL mode, so readers never wait on the writer and several connections in
 * this process (app keys, usage rollups) share the file; `busy_timeout` covers the moments
 * two of them write at once. Each feature creates its own tables.
 * @module
 */
import { StateFileError } from "./errors.ts";
import { DatabaseSync } from "node:sqlite";
import { resolve } from "node:path";

export type StateDb = DatabaseSync;

/** Files SQLite may create beside the database (WAL, shared memory, rollback journal). */
export const SQLITE_SIBLINGS: readonly string[] = ["-wal", "-shm", "-journal"];

/** The database file and its siblings: what the permission planner grants. */
export function sqliteFiles(path: string, cwd: string): string[] {
  const file = resolve(cwd, path);
  return [file, ...SQLITE_SIBLINGS.map((s) => file + s)];
}

/**
 * Open (creating if needed) the state file. Throws a one-line error naming the path when
 * it cannot be opened (missing directory, no permission, not a database).
 */
export function openStateDb(path: string): StateDb {
  let db: DatabaseSync;
  try {
    // Keys' records and hashes and who used what: readable by this user only. Made here when
    // missing (SQLite gives its -wal and -shm files the database's mode); an existing file
    // keeps the mode its operator gave it.
    if (path !== ":memory:") {
      try {
        Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
      } catch { /* there already (or not creatable: SQLite says why below) */ }
    }
    db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 2000");
  } catch (err) {
    // Deno's own advice ("run again with the --allow-all flag") is not ours: the daemon never
    // runs with -A, and the planner grants the state file's directory.
    const why = (err instanceof Error ? err.message : String(err)).replace(
      /, run again with .*$/s,
      "",
    );
    throw new StateFileError(`Cannot open the state file "${path}" (state.path): ${why}`, {
      cause: err,
    });
  }
  return db;
}
