import { dirname, resolve } from "node:path";
import type { Config } from "../config/mod.ts";
import { missingGrants } from "./check.ts";
import { type Grants, planGrants } from "./plan.ts";

/**
 * Static grants a launcher gives before the config is known, as lists Deno can take back
 * entry by entry, or `"all"` for a global grant.
 */
export interface LaunchGrants {
  readonly net: readonly string[] | "all";
  readonly read: readonly string[];
  readonly write: readonly string[];
  readonly env: readonly string[] | "all";
}

/**
 * What `deno task compile` bakes into the `pilotfish` binary (deno.json's compile task must
 * say exactly this: tests/deploy/dockerfile_test.ts checks). The image's documented paths:
 * the config directory, the socket directory, the state directory (`/var/lib/pilotfish`: a
 * `state.path` that outlives the process), `/tmp` (the default socket), the credentials
 * file directory of the image's user (`~/.aws` of 65532 "nonroot") and the EKS web identity
 * token directory. Net and env stay global: provider hosts and `${VARS}` come from the config.
 */
export const COMPILED_GRANTS: LaunchGrants = {
  net: "all",
  read: [
    "/etc/pilotfish",
    "/var/run/pilotfish",
    "/var/lib/pilotfish",
    "/tmp",
    "/home/nonroot/.aws",
    "/var/run/secrets/eks.amazonaws.com/serviceaccount",
    // A WASI plugin's stdio (wasm_plugins): its output is discarded there.
    "/dev/null",
  ],
  write: ["/var/run/pilotfish", "/var/lib/pilotfish", "/tmp", "/dev/null"],
  env: "all",
};

/**
 * What to do about a missing permission. From source, `deno task start` plans them; the
 * compiled binary's are baked in (COMPILED_GRANTS), so the path is what has to move.
 */
export function launchHint(execPath: () => string = () => Deno.execPath()): string {
  let compiled = false;
  try {
    compiled = !/(^|\/)deno(\.exe)?$/.test(execPath());
  } catch { /* not knowable: say what fits running from source */ }
  return compiled
    ? `this binary may read only under ${COMPILED_GRANTS.read.join(", ")} and write only under ${
      COMPILED_GRANTS.write.join(", ")
    }: put the file there`
    : "start it with `deno task start`, which grants exactly what the config needs";
}

/** The `--allow-*` flags for `grants` (the compile task's, for COMPILED_GRANTS). */
export function launchFlags(grants: LaunchGrants): string[] {
  const flag = (name: string, values: readonly string[] | "all") =>
    values === "all"
      ? [`--allow-${name}`]
      : values.length > 0
      ? [`--allow-${name}=${values.join(",")}`]
      : [];
  return [
    ...flag("net", grants.net),
    ...flag("read", grants.read),
    ...flag("write", grants.write),
    ...flag("env", grants.env),
  ];
}

/** Kinds the daemon never uses: taken back whatever the launcher granted. */
const NEVER_NEEDED = ["run", "ffi", "sys"] as const;
type Kind = "net" | "read" | "write" | "env";
const KINDS: readonly Kind[] = ["net", "read", "write", "env"];

export interface Narrowed {
  /** What was taken back, as the flags that had granted it (`--allow-run`, `--allow-read=/tmp`). */
  readonly revoked: readonly string[];
  /**
   * Global grants the config needs part of: Deno cannot narrow a global grant at run time
   * (revoking one host or variable under it is a no-op), so these stay whole.
   */
  readonly global: readonly string[];
  /**
   * What each kind allows afterwards: `all` (a global grant), `plan` (exactly the planner's
   * entries, or launch entries they lie under) or `none`.
   */
  readonly state: Readonly<Record<string, "all" | "plan" | "none">>;
}

/**
 * Least privilege after the config is loaded: take back every permission `needed` (the
 * planner's grants for this config) does not use. Whole kinds the config does not need go,
 * and so do the entries of `launched` that nothing needed lies under. Deno revokes an entry
 * together with every broader one, so an entry under a broader grant is left alone (the
 * broader one is not in `launched`, or it would be tried itself). Afterwards `needed` must
 * still be held: if not, the launcher's grants overlap in a way that cannot be narrowed and
 * this throws rather than run without a permission the config needs.
 */
export function narrowPermissions(needed: Grants, launched: LaunchGrants): Narrowed {
  const revoked: string[] = [];
  const global: string[] = [];
  const granted = (desc: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(desc).state === "granted";
  // A whole kind is always revoked (a no-op when nothing was granted). A query without a
  // descriptor only tells a global grant, so list entries are reported from `launched`.
  const revokeKind = (name: Deno.PermissionName, entries: readonly string[] | "all" = []) => {
    const was = granted({ name } as Deno.PermissionDescriptor)
      ? [`--allow-${name}`]
      : entries === "all"
      ? []
      : entries.filter((e) => granted(descriptor(name as Kind, e))).map((e) =>
        `--allow-${name}=${e}`
      );
    Deno.permissions.revokeSync({ name } as Deno.PermissionDescriptor);
    revoked.push(...was);
  };

  for (const name of NEVER_NEEDED) revokeKind(name);
  for (const kind of KINDS) {
    if (needed[kind].length === 0) {
      revokeKind(kind, launched[kind]);
      continue;
    }
    if (granted({ name: kind } as Deno.PermissionDescriptor)) global.push(`--allow-${kind}`);
    const entries = launched[kind];
    if (entries === "all") continue;
    for (const entry of entries) {
      if (needed[kind].some((n) => covers(kind, entry, n))) continue;
      const desc = descriptor(kind, entry);
      const broader = broaderDescriptor(kind, entry);
      if (broader !== null && granted(broader)) continue;
      if (!granted(desc)) continue;
      Deno.permissions.revokeSync(desc);
      revoked.push(`--allow-${kind}=${entry}`);
    }
  }

  const lost = missingGrants(needed);
  if (lost.length > 0) {
    throw new Error(
      `narrowing the launch permissions took back what the config needs: ${lost.join(" ")}`,
    );
  }
  const state: Record<string, "all" | "plan" | "none"> = {};
  for (const name of [...KINDS, ...NEVER_NEEDED]) {
    const all = granted({ name } as Deno.PermissionDescriptor);
    const planned = name !== "run" && name !== "ffi" && name !== "sys" && needed[name].length > 0;
    state[name] = all ? "all" : planned ? "plan" : "none";
  }
  return { revoked, global, state };
}

/**
 * The planner's grants for `config`, as the daemon computes them at start and on reload
 * (the config file's text gives the `${VARS}` it refers to).
 */
export async function planFor(
  config: Config,
  configPath: string | null,
  env: (name: string) => string | undefined,
): Promise<Grants> {
  const text = configPath === null ? null : await Deno.readTextFile(configPath).catch(() => null);
  return planGrants(config, { configPath, configText: text, cwd: Deno.cwd(), env });
}

/**
 * The needed entries a launcher's static grants do not cover, as flags: what a daemon
 * launched that way would refuse to start without (the Dockerfile test checks the image).
 */
export function uncovered(needed: Grants, launched: LaunchGrants): string[] {
  const missing: string[] = [];
  for (const kind of KINDS) {
    const entries = launched[kind];
    if (entries === "all") continue;
    for (const item of needed[kind]) {
      if (!entries.some((e) => covers(kind, e, item))) missing.push(`--allow-${kind}=${item}`);
    }
  }
  return missing;
}

/** Whether the launch entry `entry` grants the needed item `item`. */
function covers(kind: Kind, entry: string, item: string): boolean {
  switch (kind) {
    case "read":
    case "write": {
      const e = resolve(entry);
      return item === e || item.startsWith(e.endsWith("/") ? e : `${e}/`);
    }
    case "env":
      return entry.endsWith("*") ? item.startsWith(entry.slice(0, -1)) : item === entry;
    case "net": {
      if (entry === item) return true;
      const host = item.startsWith("unix:") ? item : item.replace(/:\d+$/, "");
      if (entry === host) return true;
      if (entry.startsWith("*.")) {
        const [pattern, port] = entry.slice(1).split(/:(?=\d+$)/);
        return host.endsWith(pattern ?? "") && (port === undefined || item.endsWith(`:${port}`));
      }
      return false;
    }
  }
}

function descriptor(kind: Kind, entry: string): Deno.PermissionDescriptor {
  switch (kind) {
    case "read":
    case "write":
      return { name: kind, path: entry };
    case "env":
      return { name: "env", variable: entry };
    case "net":
      return { name: "net", host: entry };
  }
}

/** A grant that revoking `entry` would also take back: its parent directory, its bare host. */
function broaderDescriptor(kind: Kind, entry: string): Deno.PermissionDescriptor | null {
  switch (kind) {
    case "read":
    case "write": {
      const parent = dirname(resolve(entry));
      return parent === resolve(entry) ? null : { name: kind, path: parent };
    }
    case "net": {
      if (entry.startsWith("unix:")) return null;
      const host = entry.replace(/:\d+$/, "");
      return host === entry ? null : { name: "net", host };
    }
    case "env":
      return null;
  }
}
