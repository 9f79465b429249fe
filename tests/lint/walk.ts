/** The `.ts` files under `dir` (a path ending in `/`), at any depth. */
export async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}${e.name}`;
    if (e.isDirectory) yield* tsFiles(`${path}/`);
    else if (e.name.endsWith(".ts")) yield path;
  }
}
