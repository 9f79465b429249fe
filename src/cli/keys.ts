/**
 * `deno task keys`: manage app keys on a running daemon through its admin API, over its Unix
 * socket (or `--url` for its TCP port). The admin token comes from `--token` or
 * `PILOTFISH_ADMIN_TOKEN`. Prints the daemon's JSON answer; a failure is one line on stderr
 * and exit code 1.
 * @module
 */
import { parseArgs } from "node:util";

export const KEYS_USAGE = `Usage: deno task keys <command> [id] [options]

Commands:
  create                 create a key; its value is printed once
  list                   every key (never their values)
  get <id>               one key
  update <id>            change name, owner, expiry, allowlists, budgets, limits
  revoke <id>            revoke (the key then gets 401)
  rotate <id>            a new value for the key; the old one stops working
  usage <id>             requests, tokens and spend today and this month

Options for create / update:
  --name NAME            --owner OWNER
  --models a,b           allowed models (default: all; "" clears)
  --providers a,b        allowed providers (default: all; "" clears)
  --daily-usd N          --monthly-usd N      budgets in USD ("none" clears)
  --requests-per-minute N  --tokens-per-minute N  --requests-per-day N  --tokens-per-day N
                         the key's own rate limits (0: unlimited)
  --ttl SECONDS          expires that long from now
  --expires-at ISO       expires then ("never" clears)

Connection:
  --socket PATH          the daemon's Unix socket (env PILOTFISH_SOCKET; default /tmp/pilotfish.sock)
  --url URL              its TCP address instead, e.g. http://127.0.0.1:9002
  --token TOKEN          server.admin_token (env PILOTFISH_ADMIN_TOKEN)
`;

export class KeysCliError extends Error {
  override readonly name = "KeysCliError";
}

/** A key's own rate limits, as flags named after its fields (`--requests-per-minute` ...). */
const LIMIT_FLAGS = [
  "requests-per-minute",
  "tokens-per-minute",
  "requests-per-day",
  "tokens-per-day",
];

const COMMANDS = ["create", "list", "get", "update", "revoke", "rotate", "usage"] as const;
type Command = (typeof COMMANDS)[number];

export interface KeysInvocation {
  readonly command: Command;
  readonly method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Under `/api/v1`. */
  readonly path: string;
  readonly body?: Record<string, unknown>;
  readonly socket: string;
  readonly url?: string;
  readonly token: string;
}

/** Parse argv into the admin call to make. Pure: `env` answers the env lookups. */
export function parseKeysCli(
  args: string[],
  env: (name: string) => string | undefined,
): KeysInvocation | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        name: { type: "string" },
        owner: { type: "string" },
        models: { type: "string" },
        providers: { type: "string" },
        "daily-usd": { type: "string" },
        "monthly-usd": { type: "string" },
        ...Object.fromEntries(LIMIT_FLAGS.map((f) => [f, { type: "string" as const }])),
        ttl: { type: "string" },
        "expires-at": { type: "string" },
        socket: { type: "string" },
        url: { type: "string" },
        token: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new KeysCliError(err instanceof Error ? err.message : String(err));
  }
  const { values: o, positionals } = parsed;
  if (o.help || positionals.length === 0) return "help";
  const [cmd, id, ...extra] = positionals;
  if (!COMMANDS.includes(cmd as Command)) {
    throw new KeysCliError(`Unknown command "${cmd}" (one of: ${COMMANDS.join(", ")})`);
  }
  const command = cmd as Command;
  const needsId = command !== "create" && command !== "list";
  if (needsId && !id) throw new KeysCliError(`"${command}" needs a key id`);
  if (!needsId && id !== undefined) throw new KeysCliError(`"${command}" takes no id`);
  if (extra.length > 0) throw new KeysCliError(`Unexpected argument "${extra[0]}"`);
  const token = o.token ?? env("PILOTFISH_ADMIN_TOKEN") ?? "";
  if (token === "") {
    throw new KeysCliError("No admin token: pass --token or set PILOTFISH_ADMIN_TOKEN");
  }
  const editing = command === "create" || command === "update";
  const fields = ["name", "owner", "models", "providers", "daily-usd", "monthly-usd", "ttl"]
    .concat("expires-at", LIMIT_FLAGS);
  if (!editing) {
    const stray = fields.find((f) => o[f as keyof typeof o] !== undefined);
    if (stray) throw new KeysCliError(`--${stray} only applies to create and update`);
  }
  const body = editing ? keyBody(o) : undefined;
  if (command === "update" && Object.keys(body ?? {}).length === 0) {
    throw new KeysCliError("update needs at least one option to change");
  }
  const key = id === undefined ? "" : `/${encodeURIComponent(id)}`;
  const call = {
    create: ["POST", "/keys"],
    list: ["GET", "/keys"],
    get: ["GET", `/keys${key}`],
    update: ["PATCH", `/keys${key}`],
    revoke: ["DELETE", `/keys${key}`],
    rotate: ["POST", `/keys${key}/rotate`],
    usage: ["GET", `/keys${key}/usage`],
  }[command] as [KeysInvocation["method"], string];
  const url = o.url;
  return {
    command,
    method: call[0],
    path: call[1],
    ...(body ? { body } : {}),
    socket: o.socket ?? env("PILOTFISH_SOCKET") ?? "/tmp/pilotfish.sock",
    ...(url !== undefined ? { url: url.replace(/\/+$/, "") } : {}),
    token,
  };
}

function keyBody(o: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const s = (name: string) => o[name] as string | undefined;
  const body: Record<string, unknown> = {};
  if (s("name") !== undefined) body.name = s("name");
  if (s("owner") !== undefined) body.owner = s("owner");
  const list = (v: string) => v.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (s("models") !== undefined) body.allowed_models = list(s("models") as string);
  if (s("providers") !== undefined) body.allowed_providers = list(s("providers") as string);
  const usd = (flag: string) => {
    const v = s(flag) as string;
    if (v === "none") return null;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      throw new KeysCliError(`--${flag} must be a positive number of USD or "none", got "${v}"`);
    }
    return n;
  };
  const budget: Record<string, number | null> = {};
  if (s("daily-usd") !== undefined) budget.daily_usd = usd("daily-usd");
  if (s("monthly-usd") !== undefined) budget.monthly_usd = usd("monthly-usd");
  if (Object.keys(budget).length > 0) body.budget = budget;
  const limits: Record<string, number> = {};
  for (const flag of LIMIT_FLAGS) {
    const v = s(flag);
    if (v === undefined) continue;
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw new KeysCliError(`--${flag} must be a whole number (0: unlimited), got "${v}"`);
    }
    limits[flag.replaceAll("-", "_")] = n;
  }
  if (Object.keys(limits).length > 0) body.limits = limits;
  if (s("ttl") !== undefined) {
    const n = Number(s("ttl"));
    if (!Number.isInteger(n) || n < 1) {
      throw new KeysCliError(`--ttl must be a whole number of seconds, got "${s("ttl")}"`);
    }
    body.ttl_seconds = n;
  }
  if (s("expires-at") !== undefined) {
    body.expires_at = s("expires-at") === "never" ? null : s("expires-at");
  }
  return body;
}

/** Make the call; returns the status and the daemon's JSON. */
export async function callDaemon(
  inv: KeysInvocation,
): Promise<{ status: number; body: unknown }> {
  const base = inv.url ?? "http://pilotfish";
  let client: Deno.HttpClient | undefined;
  try {
    client = inv.url === undefined
      ? Deno.createHttpClient({ proxy: { transport: "unix", path: inv.socket } })
      : undefined;
    const res = await fetch(`${base}/api/v1${inv.path}`, {
      method: inv.method,
      headers: { authorization: `Bearer ${inv.token}`, "content-type": "application/json" },
      ...(inv.body ? { body: JSON.stringify(inv.body) } : {}),
      ...(client ? { client } : {}),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: shown as text */ }
    return { status: res.status, body };
  } catch (err) {
    const where = inv.url ?? `the socket ${inv.socket}`;
    throw new KeysCliError(
      `Cannot reach the daemon at ${where}: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    client?.close();
  }
}

async function main(): Promise<number> {
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\n"));
  const err = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));
  try {
    const inv = parseKeysCli(Deno.args, (name) => Deno.env.get(name));
    if (inv === "help") {
      out(KEYS_USAGE);
      return 0;
    }
    const { status, body } = await callDaemon(inv);
    if (status >= 400) {
      const msg = (body as { error?: { message?: string } })?.error?.message ?? String(body);
      err(`pilotfish keys: ${status}: ${msg}`);
      return 1;
    }
    out(JSON.stringify(body, null, 2));
    if (inv.command === "create" || inv.command === "rotate") {
      err("Store the key now: it is not shown again.");
    }
    return 0;
  } catch (e) {
    if (!(e instanceof KeysCliError)) throw e;
    err(`pilotfish keys: ${e.message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
