/** A key path into a config tree: map keys and list indexes. */
export type KeyPath = readonly PropertyKey[];

/** `server.cors.allowed_origins[0]`; the root is `(root)`. */
export function formatPath(path: KeyPath): string {
  if (path.length === 0) return "(root)";
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/**
 * Where each key of a translated tree came from. A dialect renames and moves keys
 * (`providers[1].baseUrl` -> `providers.azure.base_url`); problems found in the native tree
 * are reported under the path the user wrote. Paths not recorded map through their longest
 * recorded prefix, so a problem deep inside a moved block still names the user's block.
 */
export class PathOrigins {
  readonly #origins = new Map<string, KeyPath>();

  /** `native` was written by the user at `user`. */
  set(native: KeyPath, user: KeyPath): void {
    this.#origins.set(formatPath(native), user);
  }

  /** The path the user wrote for a native path, formatted. */
  userPath(native: KeyPath): string {
    for (let n = native.length; n > 0; n--) {
      const user = this.#origins.get(formatPath(native.slice(0, n)));
      if (user !== undefined) return formatPath([...user, ...native.slice(n)]);
    }
    return formatPath(native);
  }
}
