import type { Grants } from "./plan.ts";

/**
 * The flags missing from this process for `grants`, empty when all are held. Used at
 * start (a clear message instead of a NotCapable crash mid-request) and on hot reload
 * (a config that needs a new host is refused: widening grants takes a restart).
 */
export function missingGrants(grants: Grants): string[] {
  const missing: string[] = [];
  const check = (desc: Deno.PermissionDescriptor, flag: string) => {
    if (Deno.permissions.querySync(desc).state !== "granted") missing.push(flag);
  };
  for (const host of grants.net) check({ name: "net", host }, `--allow-net=${host}`);
  for (const path of grants.read) check({ name: "read", path }, `--allow-read=${path}`);
  for (const path of grants.write) check({ name: "write", path }, `--allow-write=${path}`);
  for (const variable of grants.env) check({ name: "env", variable }, `--allow-env=${variable}`);
  return missing;
}
