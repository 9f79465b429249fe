/**
 * App keys for one config generation: the static keys of `app_keys.keys[]`, the shared
 * store of created keys, and the rules (`require_key`, expiry, revocation, allowlists,
 * budgets). The stage (stage.ts) asks it who a request is; the admin API changes keys
 * through it.
 * @module
 */
import type { AppKeysConfig } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import type { Target } from "../routing/mod.ts";
import type { KeyCreateInput, KeyPatchInput } from "./input.ts";
import {
  fromMicros,
  generateId,
  generateKey,
  hashKey,
  KEY_PREFIX,
  keyHint,
  periodClock,
  periodsAt,
  presentedKey,
  staticId,
} from "./key.ts";
import {
  type KeyBackend,
  type KeyCounter,
  type KeyLimits,
  type KeyRecord,
  NO_KEY_LIMITS,
} from "./types.ts";

/** Headers that carry a key when `app_keys.header` is not set (ours and Butter's). */
export const DEFAULT_KEY_HEADERS: readonly string[] = ["x-pilotfish-app-key", "x-butter-app-key"];

/** Why a request is refused: rendered in the route's own format by the stage. */
export interface Refusal {
  readonly status: 401 | 403 | 429 | 503;
  readonly message: string;
  /** Seconds until a budget resets (429). */
  readonly retryAfter?: number;
}

export type Identity =
  /** No key; `header` names where an unknown Butter key came, to be taken out all the same. */
  | { readonly kind: "none"; readonly header?: string }
  | {
    readonly kind: "key";
    readonly record: KeyRecord;
    readonly header: string;
    /** The key as presented (a secret: never logged), so every copy of it can be dropped. */
    readonly value?: string;
  }
  /** `keyId`: the key was known (revoked, expired, over budget): logs and metrics name it. */
  | { readonly kind: "refused"; readonly refusal: Refusal; readonly keyId?: string };

export interface KeyService {
  readonly requireKey: boolean;
  readonly backend: KeyBackend;
  /** Headers searched for a key, lowercase. */
  readonly headers: readonly string[];
  /** Who presents which key, and whether it may go on (budgets included). */
  /** `search`: the raw query (Google's SDKs may send their key as `?key=`). */
  identify(get: (name: string) => string | null, search?: string): Identity | Promise<Identity>;
  /** A refusal when `record` may not use `model` (with its targets narrowed to allowed ones). */
  allow(
    record: KeyRecord,
    model: string | undefined,
    provider: string | undefined,
    targets: readonly Target[],
  ): { refusal: Refusal } | { targets: readonly Target[] };
  create(input: KeyCreateInput): Promise<{ record: KeyRecord; key: string }>;
  update(id: string, patch: KeyPatchInput): Promise<KeyRecord>;
  revoke(id: string): Promise<KeyRecord>;
  rotate(id: string): Promise<{ record: KeyRecord; key: string }>;
  get(id: string): Promise<KeyRecord>;
  list(): Promise<KeyRecord[]>;
  usage(id: string): Promise<KeyUsage>;
  /** The key of `value` (a key value or an id), for Butter's aliases. */
  resolveRef(ref: string): Promise<KeyRecord>;
  /** The record of `id` from memory (a config key, or one the backend holds), no I/O. */
  peek(id: string): KeyRecord | null;
  /** `value` is an app key by its shape or as a configured one: never a provider credential. */
  isAppKey(value: string): boolean;
}

export interface PeriodUsage {
  readonly period: string;
  readonly requests: number;
  readonly tokens: number;
  readonly cost_usd: number;
  readonly budget_usd: number | null;
  readonly resets_at: string;
}

export interface KeyUsage {
  readonly id: string;
  readonly day: PeriodUsage;
  readonly month: PeriodUsage;
}

export interface KeyServiceOptions {
  readonly config: AppKeysConfig;
  readonly backend: KeyBackend;
  /** Wall clock, ms (expiry, budget periods). */
  readonly now: () => number;
  /**
   * The configured provider names: an allowlist entry `p/m` whose `p` is one of them names
   * model `m` on provider `p` only.
   */
  readonly providers?: readonly string[];
}

const NO_KEY: Identity = { kind: "none" };
/** Keys Butter vends. */
const BUTTER_PREFIX = "btr_";

export function createKeyService(opts: KeyServiceOptions): KeyService {
  const { config, backend, now } = opts;
  const providerNames = new Set(opts.providers ?? []);
  /** `p/m` with `p` a configured provider: model `m` there, never the name sent elsewhere. */
  const qualified = (entry: string) => {
    const slash = entry.indexOf("/");
    return slash > 0 && providerNames.has(entry.slice(0, slash));
  };
  /** An entry allows a target by its `provider/model` (qualified) or its model (bare). */
  const allowsTarget = (list: readonly string[], provider: string, model: string) =>
    list.some((e) => matchesEntry(e, qualified(e) ? `${provider}/${model}` : model));
  const statics = new Map<string, KeyRecord>();
  for (const k of config.keys) {
    const hash = hashKey(k.key);
    statics.set(hash, {
      id: staticId(hash),
      hash,
      hint: keyHint(k.key),
      name: k.name ?? k.label ?? "",
      owner: k.owner ?? null,
      created_at: 0,
      expires_at: null,
      revoked_at: null,
      allowed_models: k.allowed_models,
      allowed_providers: k.allowed_providers,
      budget: {
        daily_usd: k.budget?.daily_usd ?? null,
        monthly_usd: k.budget?.monthly_usd ?? null,
      },
      source: "config",
    });
  }
  const staticById = new Map([...statics.values()].map((r) => [r.id, r]));
  const headers = config.header ? [config.header.toLowerCase()] : DEFAULT_KEY_HEADERS;
  const periods = periodClock();
  // Hashes of recently presented values: a client sends the same key on every request, and
  // SHA-256 is most of a lookup's cost. Bounded; cleared whole when full.
  const recent = new Map<string, string>();
  const hashOf = (value: string): string => {
    let h = recent.get(value);
    if (h === undefined) {
      if (recent.size >= 4096) recent.clear();
      recent.set(value, h = hashKey(value));
    }
    return h;
  };
  // A bearer token is an app key when it has our prefix or is one of the configured keys
  // (any other bearer is a provider credential: not remembered).
  const isAppKey = statics.size === 0
    ? (v: string) => v.startsWith(KEY_PREFIX)
    : (v: string) => v.startsWith(KEY_PREFIX) || statics.has(hashKey(v));

  const judge = (record: KeyRecord, header: string): Identity | Promise<Identity> => {
    const t = now();
    if (record.revoked_at !== null) {
      return refused(401, `App key "${record.id}" has been revoked`, record.id);
    }
    if (record.expires_at !== null && record.expires_at <= t) {
      return refused(
        401,
        `App key "${record.id}" expired at ${new Date(record.expires_at).toISOString()}`,
        record.id,
      );
    }
    const { daily_usd, monthly_usd } = record.budget;
    if (daily_usd === null && monthly_usd === null) return { kind: "key", record, header };
    const p = periods(t);
    const check = (spent: { day: number; month: number }): Identity => {
      // The monthly budget first: with both used up, the day's reset would not let it through.
      if (monthly_usd !== null && fromMicros(spent.month) >= monthly_usd) {
        return overBudget(record, "monthly", monthly_usd, p.monthResetsAt, t);
      }
      if (daily_usd !== null && fromMicros(spent.day) >= daily_usd) {
        return overBudget(record, "daily", daily_usd, p.dayResetsAt, t);
      }
      return { kind: "key", record, header };
    };
    const spent = backend.spend(record.id, p);
    return spent instanceof Promise ? spent.then(check, unavailable) : check(spent);
  };

  const mine = async (id: string): Promise<KeyRecord> => {
    if (staticById.has(id)) {
      throw new GatewayError(
        "invalid_request",
        `App key "${id}" is defined in the config (app_keys.keys): change it there`,
        { status: 409 },
      );
    }
    const rec = await backend.get(id);
    if (rec === null) throw new GatewayError("not_found", `No app key "${id}"`);
    return rec;
  };

  const expiry = (
    input: { expires_at?: string | null | undefined; ttl_seconds?: number | undefined },
    t: number,
  ) => {
    if (input.ttl_seconds !== undefined) {
      return input.ttl_seconds === 0 ? null : t + input.ttl_seconds * 1000;
    }
    if (input.expires_at !== undefined) {
      return input.expires_at === null ? null : Date.parse(input.expires_at);
    }
    return undefined;
  };

  return {
    requireKey: config.require_key,
    backend,
    headers,
    peek: (id) => staticById.get(id) ?? backend.peek(id),
    isAppKey,
    identify(get, search) {
      const presented = presentedKey(get, headers, isAppKey, search);
      if (presented === null) {
        return config.require_key
          ? refused(
            401,
            `An app key is required: send it as "Authorization: Bearer pf_\u2026", in the ${
              headers.map((h) => `"${h}"`).join(" or ")
            } header, or where the route's SDK sends its key ("x-api-key", "api-key", ` +
              `"x-goog-api-key", "?key=")`,
          )
          : NO_KEY;
      }
      const hash = hashOf(presented.value);
      const known = statics.get(hash);
      const withValue = (id: Identity): Identity =>
        id.kind === "key" ? { ...id, value: presented.value } : id;
      if (known !== undefined) {
        const judged = judge(known, presented.header);
        return judged instanceof Promise ? judged.then(withValue) : withValue(judged);
      }
      const found = backend.findByHash(hash);
      // Without require_key a Butter key (`btr_...`) is optional, as in Butter ("optional
      // enforcement"): one this store does not know, vended by a Butter whose store did not
      // come along, is no key, as when none is sent. An unknown `pf_` key is ours (a typo, or
      // rotated away) and refused.
      const judgedAs = (rec: KeyRecord): Identity | Promise<Identity> => {
        const judged = judge(rec, presented.header);
        return judged instanceof Promise ? judged.then(withValue) : withValue(judged);
      };
      const decide = (rec: KeyRecord | null): Identity | Promise<Identity> =>
        rec !== null
          ? judgedAs(rec)
          : !config.require_key && presented.value.startsWith(BUTTER_PREFIX)
          ? { kind: "none", header: presented.header }
          : refused(401, "Unknown app key");
      return found instanceof Promise ? found.then(decide, unavailable) : decide(found);
    },
    allow(record, model, provider, targets) {
      let kept = targets;
      if (record.allowed_providers.length > 0) {
        if (provider !== undefined && !record.allowed_providers.includes(provider)) {
          return forbidden(record, `provider "${provider}"`);
        }
        kept = kept.filter((t) => record.allowed_providers.includes(t.provider));
        if (targets.length > 0 && kept.length === 0) {
          return forbidden(record, `model "${model}" on the providers it routes to`);
        }
      }
      if (record.allowed_models.length > 0) {
        if (model === undefined) {
          return {
            refusal: {
              status: 403,
              message:
                `App key "${record.id}" may only use listed models, and this request names none`,
            },
          };
        }
        const list = record.allowed_models;
        // Passthrough (`provider` given): the route's provider serves the name as sent.
        if (provider !== undefined) {
          if (!allowsTarget(list, provider, model)) return forbidden(record, `model "${model}"`);
          return { targets: kept };
        }
        // The name as asked, listed as a model or an alias (not provider-qualified): every
        // target it routes to. Otherwise each target on its own, so `openai/gpt-4o-mini` sent
        // to another provider (`x-gateway.provider`) is not the listed model.
        const asked = list.some((e) => !qualified(e) && matchesEntry(e, model));
        if (!asked) {
          kept = kept.filter((t) => allowsTarget(list, t.provider, t.model));
          if (kept.length === 0) return forbidden(record, `model "${model}"`);
        }
      }
      return { targets: kept };
    },
    async create(input) {
      const t = now();
      const key = generateKey();
      const exp = expiry(input, t);
      if (typeof exp === "number" && exp <= t) {
        // A key that is dead on arrival is a mistake in the request, not a key to hand out.
        throw new GatewayError("invalid_request", "Invalid key request: expires_at is in the past");
      }
      const record: KeyRecord = {
        id: generateId(),
        hash: hashKey(key),
        hint: keyHint(key),
        name: input.name ?? input.label ?? "",
        owner: input.owner ?? null,
        created_at: t,
        expires_at: exp !== undefined ? exp : config.default_ttl ? t + config.default_ttl : null,
        revoked_at: null,
        allowed_models: input.allowed_models ?? [],
        allowed_providers: input.allowed_providers ?? [],
        budget: {
          daily_usd: input.budget?.daily_usd ?? null,
          monthly_usd: input.budget?.monthly_usd ?? null,
        },
        ...(input.limits ? { limits: mergeLimits(NO_KEY_LIMITS, input.limits) } : {}),
        source: "api",
      };
      await backend.save(record);
      return { record, key };
    },
    async update(id, patch) {
      const rec = await mine(id);
      const exp = expiry(patch, now());
      const next: KeyRecord = {
        ...rec,
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.owner !== undefined ? { owner: patch.owner } : {}),
        ...(exp !== undefined ? { expires_at: exp } : {}),
        ...(patch.allowed_models !== undefined ? { allowed_models: patch.allowed_models } : {}),
        ...(patch.allowed_providers !== undefined
          ? { allowed_providers: patch.allowed_providers }
          : {}),
        budget: {
          daily_usd: patch.budget?.daily_usd !== undefined
            ? patch.budget.daily_usd
            : rec.budget.daily_usd,
          monthly_usd: patch.budget?.monthly_usd !== undefined
            ? patch.budget.monthly_usd
            : rec.budget.monthly_usd,
        },
        ...(patch.limits !== undefined
          ? {
            limits: mergeLimits(patch.limits === null ? NO_KEY_LIMITS : rec.limits, patch.limits),
          }
          : {}),
      };
      await backend.save(next);
      return next;
    },
    async revoke(id) {
      const rec = await mine(id);
      if (rec.revoked_at !== null) return rec;
      const next = { ...rec, revoked_at: now() };
      await backend.save(next);
      return next;
    },
    async rotate(id) {
      const rec = await mine(id);
      if (rec.revoked_at !== null) {
        throw new GatewayError("invalid_request", `App key "${id}" is revoked: create a new one`, {
          status: 409,
        });
      }
      const key = generateKey();
      const next = { ...rec, hash: hashKey(key), hint: keyHint(key) };
      await backend.save(next);
      return { record: next, key };
    },
    async get(id) {
      return staticById.get(id) ?? await mine(id);
    },
    async list() {
      return [...staticById.values(), ...await backend.list()];
    },
    async usage(id) {
      const rec = staticById.get(id) ?? await mine(id);
      const p = periodsAt(now());
      const c = await backend.counters(rec.id, p);
      const view = (
        period: string,
        counter: KeyCounter,
        budget: number | null,
        resets: number,
      ): PeriodUsage => ({
        period,
        requests: counter.requests,
        tokens: counter.tokens,
        cost_usd: fromMicros(counter.cost_micros),
        budget_usd: budget,
        resets_at: new Date(resets).toISOString(),
      });
      return {
        id: rec.id,
        day: view(p.day, c.day, rec.budget.daily_usd, p.dayResetsAt),
        month: view(p.month, c.month, rec.budget.monthly_usd, p.monthResetsAt),
      };
    },
    async resolveRef(ref) {
      if (ref.startsWith(KEY_PREFIX) || statics.has(hashKey(ref))) {
        const hash = hashKey(ref);
        const rec = statics.get(hash) ?? await backend.findByHash(hash);
        if (rec === null) throw new GatewayError("not_found", "No such app key");
        return rec;
      }
      return staticById.get(ref) ?? await mine(ref);
    },
  };
}

/** The limits `patch` names replace those of `base`; the others stay. */
function mergeLimits(
  base: KeyLimits | undefined,
  patch: { readonly [M in keyof KeyLimits]?: number | undefined } | null,
): KeyLimits {
  const out = { ...NO_KEY_LIMITS, ...base };
  for (const m of Object.keys(NO_KEY_LIMITS) as (keyof KeyLimits)[]) {
    const v = patch?.[m];
    if (v !== undefined) out[m] = v;
  }
  return out;
}

/** An allowlist entry matches exactly, or as a prefix when it ends in `*`. */
/** An allowlist entry: the name itself, or a prefix ending in `*`. */
function matchesEntry(entry: string, model: string): boolean {
  return entry === model || (entry.endsWith("*") && model.startsWith(entry.slice(0, -1)));
}

function refused(status: Refusal["status"], message: string, keyId?: string): Identity {
  return { kind: "refused", refusal: { status, message }, ...(keyId ? { keyId } : {}) };
}

function forbidden(record: KeyRecord, what: string): { refusal: Refusal } {
  return {
    refusal: { status: 403, message: `App key "${record.id}" is not allowed to use ${what}` },
  };
}

function overBudget(
  record: KeyRecord,
  which: "daily" | "monthly",
  usd: number,
  resetsAt: number,
  now: number,
): Identity {
  return {
    kind: "refused",
    keyId: record.id,
    refusal: {
      status: 429,
      message: `App key "${record.id}" has used its ${which} budget of $${usd}; it resets at ${
        new Date(resetsAt).toISOString()
      }`,
      retryAfter: Math.max(1, Math.ceil((resetsAt - now) / 1000)),
    },
  };
}

function unavailable(): Identity {
  return refused(
    503,
    "The app key store is unavailable: try again shortly",
  );
}
