/**
 * Readers for the files under `tests/fixtures/<dir>/`.
 * @module
 */

/** Fixture readers bound to `tests/fixtures/<dir>/` (e.g. `"anthropic"`). */
export function fixtureReader(dir: string): {
  fixtureText(name: string): Promise<string>;
  fixtureBytes(name: string): Promise<Uint8Array>;
  fixtureJson(name: string): Promise<unknown>;
} {
  const base = new URL(`../fixtures/${dir}/`, import.meta.url);
  const fixtureText = (name: string) => Deno.readTextFile(new URL(name, base));
  return {
    fixtureText,
    fixtureBytes: (name) => Deno.readFile(new URL(name, base)),
    fixtureJson: async (name) => JSON.parse(await fixtureText(name)),
  };
}
