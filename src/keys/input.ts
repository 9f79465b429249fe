/**
 * What the admin API (and Butter's `/v1/app-keys` aliases) accept to create or change a
 * key, validated whole: a 400 names every field at fault.
 * @module
 */
import * as v from "valibot";
import { parseIsoTime } from "../iso_time.ts";
import { GatewayError } from "../errors.ts";

const usd = v.nullable(
  v.pipe(
    v.number(),
    v.finite("Must be a finite number of USD"),
    v.gtValue(0, "Must be a positive number of USD"),
    // Spend is counted in micro-USD integers: past this they lose cents.
    v.maxValue(1_000_000_000, "At most 1,000,000,000 USD; null = no budget"),
  ),
);
const budget = v.strictObject({
  daily_usd: v.optional(usd),
  monthly_usd: v.optional(usd),
});
/** A limit: a whole number of requests or tokens, 0 = unlimited. */
const count = v.pipe(
  v.number(),
  v.integer("Must be a whole number"),
  v.minValue(0, "Must be 0 (unlimited) or more"),
  // Counters are integers in Redis and SQLite: a larger limit could not be counted to.
  v.maxValue(Number.MAX_SAFE_INTEGER, "At most 9,007,199,254,740,991; 0 = unlimited"),
);
/** llm-proxy's metric names; any other field is refused. `null` on PATCH clears them all. */
const limits = v.nullable(v.strictObject({
  requests_per_minute: v.optional(count),
  tokens_per_minute: v.optional(count),
  requests_per_day: v.optional(count),
  tokens_per_day: v.optional(count),
}));
/** Text shown in listings and the log: no control characters (a NUL, a newline). */
const text = v.pipe(
  v.string(),
  v.maxLength(200),
  // deno-lint-ignore no-control-regex
  v.regex(/^[^\x00-\x1f\x7f]*$/, "Must not hold control characters"),
);
/** Matched against every request of the key: bounded. */
const names = v.pipe(
  v.array(v.pipe(text, v.minLength(1))),
  v.maxLength(1_000, "At most 1,000 entries"),
);
const isoTime = v.pipe(
  v.string(),
  v.check(
    (s) => !Number.isNaN(parseIsoTime(s)),
    "Must be an ISO 8601 time (e.g. 2027-01-31T00:00:00Z)",
  ),
);
/** 100 years: a later expiry is no expiry (use 0), and past it a date cannot be written. */
const MAX_TTL_SECONDS = 100 * 365 * 86_400;

const common = {
  name: v.optional(text),
  owner: v.optional(v.nullable(text)),
  expires_at: v.optional(v.nullable(isoTime)),
  /** Butter's: lifetime from now; 0 = none (no expiry, whatever `default_ttl` says). */
  ttl_seconds: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(0),
      v.maxValue(MAX_TTL_SECONDS, "At most 100 years (3,153,600,000); 0 = no expiry"),
    ),
  ),
  // `null` clears, as for `limits` and `expires_at`.
  allowed_models: v.optional(v.pipe(v.nullable(names), v.transform((n) => n ?? []))),
  allowed_providers: v.optional(v.pipe(v.nullable(names), v.transform((n) => n ?? []))),
  budget: v.optional(
    v.pipe(v.nullable(budget), v.transform((b) => b ?? { daily_usd: null, monthly_usd: null })),
  ),
  limits: v.optional(limits),
};

const createSchema = v.strictObject({
  ...common,
  /** Butter's name for `name`. */
  label: v.optional(text),
});
const patchSchema = createSchema;

export type KeyCreateInput = v.InferOutput<typeof createSchema>;
export type KeyPatchInput = Omit<v.InferOutput<typeof patchSchema>, "label">;

/** `providers`: the configured providers, which `allowed_providers` must name. */
export function parseCreate(body: unknown, providers?: ReadonlySet<string>): KeyCreateInput {
  return knownProviders(oneName(oneExpiry(parse(createSchema, body ?? {}))), providers);
}

export function parsePatch(body: unknown, providers?: ReadonlySet<string>): KeyPatchInput {
  const { label, ...patch } = knownProviders(
    oneName(oneExpiry(parse(patchSchema, body))),
    providers,
  );
  // Butter renames a key by its `label`.
  return label !== undefined && patch.name === undefined ? { ...patch, name: label } : patch;
}

/**
 * A provider the config does not have would refuse every request of the key (a typo locks
 * its app out): named at once instead. A reload that later drops a provider is the
 * operator's change and leaves stored keys as they are.
 */
function knownProviders<T extends { allowed_providers?: readonly string[] | undefined }>(
  input: T,
  providers: ReadonlySet<string> | undefined,
): T {
  const unknown = providers === undefined
    ? []
    : (input.allowed_providers ?? []).filter((p) => !providers.has(p));
  if (unknown.length > 0) {
    throw new GatewayError(
      "invalid_request",
      `Invalid key request: allowed_providers: ${
        unknown.map((p) => JSON.stringify(p)).join(", ")
      } ${unknown.length === 1 ? "is not a" : "are not"} configured provider${
        unknown.length === 1 ? "" : "s"
      } (configured: ${[...providers!].join(", ")})`,
    );
  }
  return input;
}

/** `label` is Butter's name for `name`: both at once would drop one silently. */
function oneName<T extends { name?: unknown; label?: unknown }>(input: T): T {
  if (input.name !== undefined && input.label !== undefined) {
    throw new GatewayError(
      "invalid_request",
      "Invalid key request: give name or label (Butter's name for it), not both",
    );
  }
  return input;
}

/** An expiry is one of the two: which would win is anyone's guess. */
function oneExpiry<T extends { expires_at?: unknown; ttl_seconds?: unknown }>(input: T): T {
  if (input.expires_at !== undefined && input.ttl_seconds !== undefined) {
    throw new GatewayError(
      "invalid_request",
      "Invalid key request: give expires_at or ttl_seconds, not both",
    );
  }
  return input;
}

function parse<S extends v.GenericSchema>(schema: S, body: unknown): v.InferOutput<S> {
  const r = v.safeParse(schema, body);
  if (r.success) return r.output;
  const problems = r.issues.map((i) => {
    const path = v.getDotPath(i);
    return path ? `${path}: ${i.message}` : i.message;
  });
  throw new GatewayError("invalid_request", `Invalid key request: ${problems.join("; ")}`);
}
