/** `${NAME}` or `${NAME:-fallback}`; NAME follows POSIX env var rules. */
const REF_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export type EnvLookup = (name: string) => string | undefined;

/** Substitute env references in one string. Unset without fallback -> "". */
export function interpolate(text: string, env: EnvLookup): string {
  if (!text.includes("${")) return text;
  return text.replace(REF_RE, (_m, name: string, fallback: string | undefined) => {
    const v = env(name);
    return v !== undefined && v !== "" ? v : (fallback ?? "");
  });
}

/**
 * Substitute env references in every string of a parsed YAML tree. Done after parsing,
 * not on the raw text, so a value containing YAML syntax cannot change the structure.
 */
export function interpolateTree(node: unknown, env: EnvLookup): unknown {
  if (typeof node === "string") return interpolate(node, env);
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, env));
  if (node !== null && typeof node === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = interpolateTree(v, env);
    return out;
  }
  return node;
}

/** Names of every env var a config text refers to (for permission planning). */
export function referencedEnvVars(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(REF_RE)) names.add(m[1] as string);
  return [...names].sort();
}
