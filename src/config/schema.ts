import * as v from "valibot";
import { parseDuration } from "./duration.ts";
import { PROVIDER_PRESETS, PROVIDER_TYPES } from "./presets.ts";
import { hashKey } from "../keys/key.ts";
import { parseCidr } from "../limits/proxies.ts";
import { parseRedisTarget, sentinelUrl, sentinelUrlProblem } from "../state/redis_url.ts";

/**
 * The config schema: a superset of Butter's `config.example.yaml` and llm-proxy's
 * `features.*` blocks, with our own keys on top. Objects are strict so that unknown keys
 * surface as issues; `load.ts` turns those into warnings rather than refusing the file.
 * Keys keep their YAML snake_case names so a validation path is the path a user edits.
 *
 * valibot rather than zod: same job (every issue with its path), a third of the memory
 * (zod alone costs the daemon ~8 MB of its 50 MB idle budget).
 */

/**
 * Env substitution happens after YAML parsing, so `port: ${PORT:-9002}` yields a string:
 * accept numeric strings for numbers. Digits grouped with underscores (`5_000`, which YAML
 * 1.2 reads as a string) are numbers too: llm-proxy's Go YAML reads them so, and its
 * `configs/base.yml` writes limits and tiers that way.
 */
const numberFromString = v.transform((input: unknown) => {
  if (typeof input !== "string") return input;
  const t = input.trim();
  return /^-?\d+(?:_\d+)*(?:\.\d+)?$/.test(t) ? Number(t.replaceAll("_", "")) : input;
});

/**
 * "true"/"false" (an env value), and the YAML 1.1 words Go's YAML accepts for a boolean
 * field (`yes`/`no`, `on`/`off`, `y`/`n`): llm-proxy's and Butter's files may use them.
 */
const boolFromString = v.transform((input: unknown) => {
  if (typeof input !== "string") return input;
  const t = input.trim();
  // Go's spellings: all lower, all upper, or capitalised ("Yes", never "yEs").
  const lower = t.toLowerCase();
  const word = t === lower || t === t.toUpperCase() ||
      t === lower.charAt(0).toUpperCase() + lower.slice(1)
    ? lower
    : t;
  if (word === "true" || word === "yes" || word === "on" || word === "y") return true;
  if (word === "false" || word === "no" || word === "off" || word === "n") return false;
  return input;
});

const number = () => v.pipe(v.unknown(), numberFromString, v.number());
const atLeast = (min: number) => v.pipe(number(), v.minValue(min));
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  v.pipe(number(), v.integer(), v.minValue(min), v.maxValue(max));
const positive = () => v.pipe(number(), v.gtValue(0, "Invalid value: Expected a positive number"));
const bool = () => v.pipe(v.unknown(), boolFromString, v.boolean());
/** A positive number where Butter reads a written 0 as "unset": `fallback` then. */
const positiveOrZeroIs = (fallback: number) =>
  v.pipe(
    number(),
    v.minValue(0, "Invalid value: Expected a positive number"),
    v.transform((n: number) => (n === 0 ? fallback : n)),
  );

/** A switch as the schema reads it (`false`, `"no"`, `"off"`, ... are false). */
export function switchedOff(value: unknown): boolean {
  const r = v.safeParse(bool(), value);
  return r.success && r.output === false;
}
const str = () => v.string();

/**
 * Duration in YAML (`250ms`, `5s`, `1m30s`, or a number of seconds) -> milliseconds.
 * Defaults go through this too, so they are written as duration strings ("30s"), never ms.
 */
const duration = () =>
  v.pipe(
    v.union([v.string(), v.number()]),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const ms = parseDuration(dataset.value);
      if (ms === null) {
        addIssue({ message: `Invalid duration "${dataset.value}" (use e.g. "250ms", "5s", "2m")` });
        return NEVER;
      }
      return ms;
    }),
  );

const httpUrl = () =>
  v.pipe(
    v.string(),
    v.check((s) => s === "" || /^https?:\/\/[^\s/]+/.test(s), "Must be an http:// or https:// URL"),
  );

/**
 * A provider's API root: request paths are appended to it, so a query string or fragment
 * would end up before them, and credentials in it would be sent as Basic auth beside the
 * key (configure those as `keys` or `headers`).
 */
const baseUrl = () =>
  v.pipe(
    httpUrl(),
    v.check(
      (s) => !/[?#]/.test(s),
      "Must not have a query string or fragment (paths are appended to it)",
    ),
    v.check(
      (s) => !/^https?:\/\/[^/]*@/.test(s),
      "Must not hold credentials (user:password@); use the provider's keys or headers",
    ),
  );

const opt = v.optional;
const strictObject = v.strictObject;
const listOf = <T extends v.GenericSchema>(item: T) => v.array(item);
const mapOf = <T extends v.GenericSchema>(value: T) => v.record(v.string(), value);

/**
 * Browser access (llm-gateway's `server.cors`; llm-proxy answers browsers too). Off by
 * default; only `allowed_origins` get `Access-Control-Allow-Origin` (`"*"` only when listed).
 */
const corsSchema = strictObject({
  enabled: opt(bool(), false),
  allowed_origins: opt(listOf(str()), []),
  allowed_methods: opt(listOf(str()), ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
  /** Empty: the headers a preflight asks for are allowed. */
  allowed_headers: opt(listOf(str()), []),
  exposed_headers: opt(listOf(str())),
  allow_credentials: opt(bool(), false),
  /** How long a browser may cache a preflight answer (`Access-Control-Max-Age`). */
  max_age: opt(duration(), "10m"),
});

/**
 * The body limit for Butter's "no cap" (`max_request_bytes` negative). A JSON body is read
 * into memory, decoded into one string and parsed (and a passthrough body is held whole for
 * retries and stages), so some cap must stay: 256 MiB is half of V8's longest string and
 * keeps one such body's buffer, text and parse within the default heap.
 */
export const NO_CAP_BODY_BYTES = 256 * 1024 * 1024;

const serverSchema = strictObject({
  host: opt(str(), "127.0.0.1"),
  port: opt(int(0, 65535), 9002),
  /** Butter's `address: ":8080"`; host/port win when both are given. */
  address: opt(str()),
  /** Set false to serve on the Unix socket only. */
  tcp: opt(bool(), true),
  socket: opt(str(), "/tmp/pilotfish.sock"),
  socket_mode: opt(
    v.pipe(v.string(), v.regex(/^0?[0-7]{3}$/, 'Must be an octal mode string such as "0660"')),
    "0660",
  ),
  max_body_bytes: opt(int(1), 10 * 1024 * 1024),
  /**
   * Butter's name for it (its `config.example.yaml`); `max_body_bytes` wins when both are set.
   * Negative is Butter's "no cap": read as `NO_CAP_BODY_BYTES` (a body is held in memory).
   */
  max_request_bytes: opt(
    v.pipe(
      int(Number.MIN_SAFE_INTEGER),
      v.check((n) => n !== 0, "Expected a size in bytes, or a negative number for no cap"),
    ),
  ),
  // Trimmed, as provider keys are: a token read from a file or a secret often ends in a line
  // break, which no client sends back (every admin call would be a 401).
  admin_token: opt(v.pipe(str(), v.trim()), ""),
  /**
   * Butter's / llm-gateway's (`readTimeout`) Go http.Server ReadTimeout. Unset: no limit but
   * on a unified route's JSON body (30 s, src/routes/body.ts). The whole request body must have arrived this long after the request started (its headers
   * were read); a slower client gets 408 in the route's error format, with `Connection:
   * close`. A unified route calls no upstream; a chunked passthrough body already streaming
   * upstream has that upstream request aborted (one of declared length is read whole first,
   * so its Content-Length reaches the upstream intact). Routes that read no body: unaffected.
   */
  read_timeout: opt(duration()),
  /**
   * Go's WriteTimeout (llm-gateway's `writeTimeout`). Unset: no limit. The whole response must
   * be written this long after the request started. Until the response starts it is one more
   * deadline beside `x-gateway.timeout` and `routing.failover.deadline` (the smallest wins):
   * 504 in the route's error format. A stream still running when it passes is ended: an
   * in-format error event on the unified routes, the body cut off on passthrough; the access
   * log line says `outcome: error`, `reason: write_timeout`.
   */
  write_timeout: opt(duration()),
  drain_timeout: opt(duration(), "30s"),
  reload_interval: opt(duration(), "1s"),
  cors: opt(corsSchema, {}),
});

const keySchema = strictObject({
  key: str(),
  /** Butter reads 0 as its default, 1. */
  weight: opt(positiveOrZeroIs(1), 1),
  models: opt(listOf(str()), []),
  id: opt(str()),
});

/**
 * Prices in USD per million tokens (`pricing.models.*`, llm-proxy's `pricing:` under a
 * model). Cache reads/writes and reasoning default to the input/output price when absent.
 */
const priceFields = {
  input: atLeast(0),
  output: atLeast(0),
  cache_read: opt(atLeast(0)),
  cache_write: opt(atLeast(0)),
  reasoning: opt(atLeast(0)),
};
const priceSchema = strictObject({
  ...priceFields,
  /** A dearer tier for prompts above `threshold` tokens (Gemini Pro's long-context rate). */
  long_context: opt(strictObject({ threshold: int(1), ...priceFields })),
});
/**
 * llm-proxy's tier list: `[{threshold: 200000, input, output}, {threshold: 0, input, output}]`
 * - the entry with a threshold prices prompts up to it, the `threshold: 0` one those above.
 */
const tieredPrice = v.pipe(
  listOf(strictObject({ threshold: int(0), ...priceFields })),
  v.minLength(1, "Expected at least one pricing tier"),
  v.check(
    (tiers) => tiers.length === 1 || (tiers.length === 2 && tiers.some((t) => t.threshold === 0)),
    "Expected one tier, or two: one with a threshold and one with threshold 0 (above it)",
  ),
  v.transform((tiers): v.InferOutput<typeof priceSchema> => {
    const base = tiers.find((t) => t.threshold > 0) ?? (tiers[0] as (typeof tiers)[number]);
    const above = tiers.find((t) => t !== base);
    const { threshold: _t, ...flat } = base;
    return above ? { ...flat, long_context: { ...above, threshold: base.threshold } } : flat;
  }),
);
/** One price or a tier list. Chosen by shape, so an issue names the key inside it. */
export const modelPriceSchema = v.lazy((input: unknown) =>
  Array.isArray(input) ? tieredPrice : priceSchema
);
export type ModelPrice = v.InferOutput<typeof priceSchema>;

/**
 * llm-proxy's `pricing:` under a model: a price or a tier list as above, or a mapping with
 * `tiers:` (what its config merge writes back), and in a mapping `overrides.<name>`: a flat
 * price for that name (one of the model's aliases), used instead of the model's own.
 */
const proxyPriceObject = v.pipe(
  strictObject({
    input: opt(atLeast(0)),
    output: opt(atLeast(0)),
    cache_read: opt(atLeast(0)),
    cache_write: opt(atLeast(0)),
    reasoning: opt(atLeast(0)),
    long_context: opt(strictObject({ threshold: int(1), ...priceFields })),
    tiers: opt(tieredPrice),
    overrides: opt(mapOf(strictObject(priceFields))),
  }),
  v.check(
    (p) => p.tiers !== undefined || (p.input !== undefined && p.output !== undefined),
    "Expected input and output prices, or tiers",
  ),
  v.transform(({ tiers, overrides, ...flat }) => ({
    price: tiers ?? (flat as ModelPrice),
    overrides: overrides ?? {},
  })),
);
const proxyPrice = v.lazy((input: unknown) =>
  Array.isArray(input)
    ? v.pipe(tieredPrice, v.transform((price) => ({ price, overrides: {} })))
    : proxyPriceObject
);

/**
 * llm-proxy's per-model entry under `providers.<p>.models`: its pricing keys are ours too.
 * Its other keys (`limits`, `deprecated`, ...) are unknown keys: a warning, not a refusal.
 */
const proxyModelSchema = strictObject({
  enabled: opt(bool(), true),
  /** Other names of the model (priced the same). */
  aliases: opt(listOf(str()), []),
  pricing: opt(proxyPrice),
});

/**
 * A provider's models: a list of names, or llm-proxy's map of model -> `{enabled, aliases,
 * pricing}`. The map becomes the list of enabled names plus `model_pricing`.
 */
const providerModels = v.pipe(
  v.lazy((input: unknown) => Array.isArray(input) ? listOf(str()) : mapOf(proxyModelSchema)),
  v.transform((models): { list: string[]; pricing: Record<string, ModelPrice> } => {
    if (Array.isArray(models)) return { list: models, pricing: {} };
    const list: string[] = [];
    const pricing: Record<string, ModelPrice> = {};
    for (const [name, m] of Object.entries(models)) {
      if (m.enabled) list.push(name);
      if (!m.pricing) continue;
      for (const n of [name, ...m.aliases]) pricing[n] = m.pricing.price;
      for (const [n, price] of Object.entries(m.pricing.overrides)) pricing[n] = price;
    }
    return { list, pricing };
  }),
);

const providerSchema = strictObject({
  type: opt(v.picklist(PROVIDER_TYPES)),
  base_url: opt(baseUrl()),
  keys: opt(listOf(keySchema), []),
  models: opt(providerModels, []),
  headers: opt(mapOf(str()), {}),
  timeout: opt(duration(), "60s"),
  /** Retries on this provider (llm-gateway's per-provider `maxRetries`); default: routing.failover.max_retries. */
  max_retries: opt(int(0)),
  /**
   * No default here: unified routes default to `gateway`, native passthrough routes to the
   * client's own credential (llm-proxy), so `resolveProvider` needs to know whether it was set.
   */
  credential_mode: opt(
    v.pipe(
      v.picklist(["gateway", "passthrough", "stored"]),
      // Butter's name for the configured keys (its default).
      v.transform((m) => (m === "stored" ? "gateway" : m)),
    ),
  ),
  /**
   * OpenAI-compatible streams: ask for `stream_options.include_usage` when the client did
   * not (so a stream is billed from the upstream's count), and drop that usage chunk on
   * the way back. Default: on for the `openai` and `azure` presets, off for other
   * compatible APIs (not all of them accept `stream_options`).
   */
  stream_usage: opt(bool()),
  enabled: opt(bool(), true),
  // azure
  api_version: opt(str(), "2024-10-21"),
  /** Model name -> Azure deployment name (default: the model name). */
  deployments: opt(mapOf(str()), {}),
  // bedrock
  region: opt(str()),
  endpoint: opt(httpUrl()),
  sign: opt(bool()),
  // mock
  latency: opt(duration(), "0ms"),
  chunk_delay: opt(duration(), "0ms"),
  stream_chunks: opt(int(0), 0),
  /**
   * `POST /v1/responses` on this provider: `native` relays the Responses API as is (an
   * OpenAI-type provider whose upstream speaks it; the `openai` preset's default),
   * `translate` sends chat completions. Default: native for the `openai` preset only.
   */
  responses: opt(v.picklist(["native", "translate"])),
});

const strategy = v.picklist(["priority", "round-robin", "weighted", "least-latency"]);

/** `provider/model`, or llm-gateway's `modelMappings` shape `{ provider, model }`. */
const aliasTarget = v.union([
  v.string(),
  strictObject({ provider: str(), model: str() }),
]);

const routingSchema = strictObject({
  default_provider: opt(str(), ""),
  /**
   * Providers tried, in order, after `default_provider` for a model it serves by default
   * (llm-gateway's `fallbackChain` for models no provider lists). Same model name on each.
   */
  fallback: opt(listOf(str()), []),
  models: opt(
    mapOf(strictObject({
      /** Provider names (same model name) or `provider/model` to serve it under another name. */
      providers: v.pipe(listOf(str()), v.minLength(1, "Expected at least one provider")),
      strategy: opt(strategy, "priority"),
      weights: opt(listOf(positive())),
      /** Start the next candidate in parallel when the first has not answered by then. */
      hedge_after: opt(duration()),
      /** This model's `routing.failover.first_chunk_timeout`. */
      first_chunk_timeout: opt(duration()),
      /** This model's `routing.failover.stream_idle_timeout`. */
      stream_idle_timeout: opt(duration()),
    })),
    {},
  ),
  aliases: opt(mapOf(aliasTarget), {}),
  failover: opt(
    v.pipe(
      strictObject({
        enabled: opt(bool(), true),
        /** Butter's meaning: retries on the same provider before moving to the next one. */
        max_retries: opt(int(0)),
        /** Deprecated alias of `max_retries` (load.ts warns); `max_retries` wins when both are set. */
        retries_per_provider: opt(int(0)),
        /** Total attempts across every provider; 0 = no cap (the deadline still bounds all). */
        max_attempts: opt(int(0), 0),
        retry_on: opt(listOf(int(100, 599)), [429, 500, 502, 503, 504, 529]),
        backoff: opt(
          strictObject({
            initial: opt(duration(), "100ms"),
            /** Butter reads 0 as its default, 2. */
            multiplier: opt(
              v.pipe(
                positiveOrZeroIs(2),
                v.minValue(1, "Invalid value: Expected a number at least 1 (0 reads as 2)"),
              ),
              2,
            ),
            max: opt(duration(), "5s"),
          }),
          {},
        ),
        /** Overall budget until a response starts (x-gateway.timeout overrides it). */
        deadline: opt(duration(), "120s"),
        /**
         * A stream must send its first content (not a keep-alive, not a role-only chunk)
         * this long after the attempt started, or the attempt fails over. Unset: no limit.
         */
        first_chunk_timeout: opt(duration()),
        /**
         * After a stream was committed, upstream silence this long ends it with an error
         * event in the client's format (log outcome `idle_timeout`). Unset: no limit.
         */
        stream_idle_timeout: opt(duration()),
      }),
      v.transform(({ retries_per_provider, max_retries, ...rest }) => ({
        ...rest,
        max_retries: max_retries ?? retries_per_provider ?? 2,
      })),
    ),
    {},
  ),
  /** How long a key rests after the provider refused it. */
  key_cooldown: opt(
    strictObject({
      auth: opt(duration(), "5m"),
      rate_limit: opt(duration(), "30s"),
    }),
    {},
  ),
});

/** `host[:port]`, an IPv6 host in brackets: a Redis node as config names one. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^\s:/@,[\]]+)(:\d{1,5})?$/;

/**
 * llm-proxy's and Butter's `redis.address`: `host:port`, read as the link reads it. A typo
 * here used to pass `--check` and leave the limits unshared (each sidecar on its own) for good.
 */
const redisAddress = () =>
  v.pipe(
    str(),
    v.check(
      // Empty (an unset `${REDIS_ADDR}`): the default, as before. The port defaults to 6379.
      (a) => a === "" || (HOST_PORT.test(a) && parseRedisTarget(`redis://${a}`) !== null),
      'Must be host:port, such as "localhost:6379"',
    ),
  );

/** A Redis URL matching `allowed`; a `+sentinel` one must also be well formed (says how not). */
const redisUrl = (allowed: RegExp, message: string) =>
  v.pipe(
    str(),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const url = dataset.value;
      if (!allowed.test(url)) return addIssue({ message });
      const problem = /^rediss?\+sentinel:/.test(url) ? sentinelUrlProblem(url) : null;
      if (problem !== null) return addIssue({ message: problem });
      // What the link parses at start (a port past 65535, a bad host): refused here, so
      // `--check` and a reload say so instead of the start failing on it.
      if (url !== "" && parseRedisTarget(url) === null) {
        addIssue({ message: "Not a valid Redis URL: the host or port cannot be read" });
      }
    }),
  );

const hostPort = (what: string) =>
  v.pipe(str(), v.check((h) => HOST_PORT.test(h), `Must be host:port (${what})`));

/**
 * A Sentinel-managed master: the group's `name`, the Sentinels (`nodes`, port 26379 by
 * default), the data nodes' `username`/`password`/`db`, the Sentinels' own
 * `sentinel_username`/`sentinel_password`, `tls`, and `data_nodes`: every master or replica
 * Sentinel may name (host:port), which the daemon is granted network access to. Becomes a
 * `redis[s]+sentinel://` URL.
 */
const sentinelSchema = v.pipe(
  strictObject({
    name: v.pipe(str(), v.minLength(1, "Name the master group (sentinel monitor <name> \u2026)")),
    nodes: v.pipe(
      listOf(hostPort("a Sentinel; port 26379 by default")),
      v.minLength(1, "List at least one Sentinel (host:port)"),
    ),
    username: opt(str()),
    password: opt(str()),
    sentinel_username: opt(str()),
    sentinel_password: opt(str()),
    db: opt(int(0)),
    tls: opt(bool()),
    data_nodes: opt(listOf(hostPort("a master or replica; port 6379 by default"))),
  }),
  v.transform((s) => sentinelUrl(s)),
);

/**
 * llm-proxy's Redis block (breaker, rate limits): `url` (`redis://` or `rediss://`; over
 * `address` and `password` when set and not empty, as in llm-proxy), else `address` and
 * `password`; `db`, when given, overrides the URL's database. Read as one connection.
 */
const redisConn = v.pipe(
  strictObject({
    url: opt(
      redisUrl(
        /^(|rediss?(\+sentinel)?:\/\/\S+)$/,
        "Must be a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL",
      ),
    ),
    address: opt(redisAddress()),
    password: opt(str(), ""),
    /** Written: over the URL's (or the sentinel's) database; unset, theirs is used. */
    db: opt(int(0)),
    /** A Sentinel-managed master instead of `address` (becomes a `redis+sentinel://` URL). */
    sentinel: opt(sentinelSchema),
  }),
  v.check(
    (r) => r.sentinel === undefined || r.url === undefined || r.url === "",
    "Set either url or sentinel, not both",
  ),
  v.check(
    (r) => r.sentinel === undefined || r.address === undefined,
    "Set either address or sentinel, not both",
  ),
  v.transform((r): RedisConn => {
    if (r.sentinel !== undefined) {
      return {
        url: r.sentinel,
        ...(r.password !== "" ? { password: r.password } : {}),
        ...(r.db !== undefined ? { db: r.db } : {}),
      };
    }
    if (r.url !== undefined && r.url !== "") {
      return { url: r.url, ...(r.db !== undefined ? { db: r.db } : {}) };
    }
    return {
      url: `redis://${r.address || "localhost:6379"}`,
      ...(r.password !== "" ? { password: r.password } : {}),
      db: r.db ?? 0,
    };
  }),
);

/** A Redis connection as the stores take it. */
export interface RedisConn {
  readonly url: string;
  readonly password?: string;
  /** Overrides the URL's database. */
  readonly db?: number;
}

const mode = v.picklist(["off", "log", "on"]);

/**
 * The breaker's `mode`: llm-proxy's later configs write `enforce` (its README's `on`) and
 * read as `on` here; `/health` reports `on`.
 */
const breakerMode = v.pipe(
  v.picklist(["off", "log", "on", "enforce"]),
  v.transform((m) => (m === "enforce" ? "on" : m)),
);

/** llm-proxy's `features.circuit_breaker`, same keys and defaults as its README. */
const circuitBreakerSchema = strictObject({
  enabled: opt(bool(), false),
  mode: opt(breakerMode),
  backend: opt(v.picklist(["memory", "redis"])),
  failure_threshold: opt(int(1), 5),
  window_seconds: opt(positive(), 120),
  cooldown_seconds: opt(positive(), 300),
  max_transient_retries: opt(int(0), 2),
  max_rate_limit_retries: opt(int(0), 2),
  retry_contribution_mode: opt(mode, "log"),
  global_rate_limit_escalation_window: opt(atLeast(0), 60),
  degraded_signal: opt(str(), ""),
  test_mode_enabled: opt(bool(), false),
  bypass_allowed: opt(bool(), true),
  bypass_reason_allowlist: opt(listOf(str()), []),
  per_provider_rollup_threshold: opt(int(0), 0),
  per_provider_rollup_window_seconds: opt(positive(), 300),
  redis: opt(redisConn),
});

/**
 * What a limit does while its shared (Redis) store is unreachable: `open` admits up to this
 * sidecar's share of it, `closed` refuses what it covers.
 */
const limitFailMode = v.picklist(["open", "closed"]);

/** llm-proxy's limit: a count, where 0 or below means unlimited (its `LimitsConfig`), read as 0. */
const unlimitedAtOrBelowZero = () =>
  v.pipe(opt(int(Number.MIN_SAFE_INTEGER), 0), v.transform((n) => Math.max(0, n)));

/** llm-proxy's limit keys (0 = unlimited), globally and per user. */
const proxyLimitKeys = {
  requests_per_minute: unlimitedAtOrBelowZero(),
  tokens_per_minute: unlimitedAtOrBelowZero(),
  requests_per_day: unlimitedAtOrBelowZero(),
  tokens_per_day: unlimitedAtOrBelowZero(),
  fail_mode: opt(limitFailMode),
};

/**
 * llm-proxy's overrides: limits of their own for one user, model or client key (its app key
 * id, or the credential it sends), counted beside the global limits, which still apply.
 */
const perUserOverrides = opt(
  strictObject({
    per_user: opt(mapOf(strictObject(proxyLimitKeys)), {}),
    per_model: opt(mapOf(strictObject(proxyLimitKeys)), {}),
    per_key: opt(mapOf(strictObject(proxyLimitKeys)), {}),
  }),
  {},
);

/** llm-proxy's `features.rate_limiting`. */
const rateLimitingSchema = strictObject({
  enabled: opt(bool(), false),
  /** Where every limit (of any dialect) counts; `state.backend` when absent. */
  backend: opt(v.picklist(["memory", "redis"])),
  estimation: opt(
    strictObject({
      max_sample_bytes: opt(int(0), 20_000),
      bytes_per_token: opt(positive(), 4),
      chars_per_token: opt(positive(), 4),
      provider_chars_per_token: opt(mapOf(positive()), {}),
    }),
    {},
  ),
  limits: opt(strictObject({ ...proxyLimitKeys, overrides: perUserOverrides }), {}),
  /** The issue's spelling: `overrides.per_user` beside `limits` (both are read). */
  overrides: perUserOverrides,
  redis: opt(redisConn),
  /** Redis backend: sidecars sharing the limits; each falls back to its share when Redis is down. */
  fleet_size: opt(int(1), 1),
  /** The fraction of each limit one sidecar admits alone while Redis is down (1 / fleet_size). */
  fallback_share: opt(v.pipe(number(), v.gtValue(0), v.maxValue(1))),
});

/** llm-gateway's `{ requests, window }` budget. */
const requestWindow = strictObject({
  requests: int(1),
  // A window of 0 never fills (and its reset is no time): refused, not a limit that never holds.
  window: v.pipe(duration(), v.minValue(1, "Must be above 0")),
  fail_mode: opt(limitFailMode),
});

/** llm-gateway's `rateLimit` (global / per key / per model), validated here; enforced by the limiter. */
const rateLimitSchema = strictObject({
  enabled: opt(bool(), false),
  global: opt(requestWindow),
  per_key: opt(requestWindow),
  per_model: opt(mapOf(requestWindow), {}),
  /** Ours, in llm-gateway's style: per provider (the provider a request is routed to). */
  per_provider: opt(mapOf(requestWindow), {}),
});

/**
 * Butter's `plugins.ratelimit`: a token bucket of `requests_per_minute`, global or per IP, or
 * per app key (`per_app_key`: a request with a key is counted in its key's bucket only).
 */
const butterRateLimitSchema = strictObject({
  // Butter's default, and what it keeps when the value is not above 0.
  requests_per_minute: v.pipe(
    opt(int(Number.MIN_SAFE_INTEGER), 60),
    v.transform((n) => (n > 0 ? n : 60)),
  ),
  per_ip: opt(bool(), false),
  per_app_key: opt(bool(), false),
  /** A key's bucket; default `requests_per_minute`. */
  per_app_key_rpm: opt(int(1)),
  /**
   * Butter's per-key rates, keyed by the key's value. Only its SHA-256 (how keys are looked
   * up) is kept: the value never reaches the loaded config.
   */
  app_key_limits: opt(
    v.pipe(
      mapOf(int(1)),
      v.transform((m) => {
        const byHash: Record<string, number> = {};
        for (const [value, rpm] of Object.entries(m)) byHash[hashKey(value.trim())] = rpm;
        return byHash;
      }),
    ),
    {},
  ),
  /**
   * Proxies (CIDRs or addresses) whose `X-Forwarded-For` / `X-Real-IP` name the client for
   * `per_ip`; without it those headers are ignored.
   */
  trusted_proxies: opt(
    listOf(
      v.pipe(
        str(),
        v.check((c) => parseCidr(c) !== null, "Must be an IP address or a CIDR such as 10.0.0.0/8"),
      ),
    ),
    [],
  ),
  fail_mode: opt(limitFailMode),
});

/** The response cache: llm-gateway's keys and Butter's (`max_entries`, `redis`). */
const cacheSchema = strictObject({
  enabled: opt(bool(), false),
  backend: opt(v.picklist(["memory", "redis"]), "memory"),
  ttl: opt(duration()),
  /** llm-gateway's `maxSize`: memory budget in MB. */
  max_size_mb: opt(int(1)),
  /** Butter's entry cap for the memory backend. */
  max_entries: opt(int(1)),
  redis: opt(v.pipe(
    strictObject({
      address: opt(redisAddress()),
      password: opt(str(), ""),
      /** Unset: the sentinel's `db`, else 0. Set: this database, over the sentinel's. */
      db: opt(int(0)),
      key_prefix: opt(str()),
      /** A Sentinel-managed master instead of `address` (a `redis+sentinel://` URL once parsed). */
      sentinel: opt(sentinelSchema),
    }),
    v.check(
      (r) => r.address === undefined || r.sentinel === undefined,
      "Set either address or sentinel, not both",
    ),
    v.transform(({ address, ...r }) => ({ ...r, address: address || "localhost:6379" })),
  )),
  /** `global`: one cache for every caller; `key`: one per application key (`ex.principal.appKey`). */
  scope: opt(v.picklist(["global", "key"]), "global"),
  /** Also answer streaming requests from the cache, replayed as a stream in the client's format. */
  streaming: opt(bool(), false),
});

/** `pricing.*`: per-model prices over the built-in table (src/usage/pricing.ts). */
const pricingSchema = strictObject({
  /** Use the built-in, dated price table for models not listed here. */
  builtin: opt(bool(), true),
  /** `provider/model` (that provider only) or `model` (any provider) -> prices per 1M tokens. */
  models: opt(mapOf(modelPriceSchema), {}),
});

/** llm-gateway's `metrics` block. */
const metricsSchema = strictObject({
  enabled: opt(bool(), true),
  endpoint: opt(
    v.pipe(v.string(), v.regex(/^\/\S*$/, 'Must be a path such as "/metrics"')),
    "/metrics",
  ),
  /** Label series by app key id (never the key itself); off by default (cardinality). */
  per_key: opt(bool(), false),
});

/**
 * Butter's `plugins.requestlog`. Our access log is always on; `log_bodies` and
 * `body_max_bytes` are `logging.request_body` and `request_body_max_bytes` (ours win when
 * written); `log_app_key` adds the app key's id (never the key) to each line;
 * `request_id_header` other than `X-Request-ID` is not supported (load.ts warns).
 */
export const REQUESTLOG_LEVELS = ["debug", "info", "warn", "error"] as const;
const butterRequestLogSchema = strictObject({
  /**
   * Butter's level for its request lines (slog's names, any case): ours log a request at it,
   * and a 5xx or a stream that failed at `error` still.
   */
  level: opt(
    v.pipe(
      str(),
      v.toLowerCase(),
      // As Butter reads it: `warning` is warn, a word it does not know is info (load.ts warns).
      v.transform((l: string) =>
        l === "warning" ? "warn" : REQUESTLOG_LEVELS.find((k) => k === l) ?? "info"
      ),
    ),
  ),
  log_bodies: opt(bool()),
  body_max_bytes: opt(int(1)),
  request_id_header: opt(
    v.pipe(str(), v.regex(/^[A-Za-z0-9-]+$/, "Must be an HTTP header name")),
  ),
  log_app_key: opt(bool()),
});

/**
 * Butter's `plugins.tracing`: OTLP/HTTP export; `endpoint` is `host:port` or a URL, and
 * without one the block exports nothing ("omit to disable", as Butter's example says).
 */
const butterTracingSchema = strictObject({
  endpoint: opt(str()),
  service_name: opt(str()),
  /** Plain http for a bare `host:port` endpoint (`false`: https), Butter's default. */
  insecure: opt(bool(), true),
});

/** Ours: traces, and the fleet's heartbeats for `/status`. */
const telemetrySchema = strictObject({
  service_name: opt(str(), "pilotfish"),
  tracing: opt(
    strictObject({
      /** Also on when `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` is set or `plugins.tracing` is. */
      enabled: opt(bool(), false),
      /** OTLP/HTTP traces URL; default from `OTEL_EXPORTER_OTLP_*`, else localhost:4318. */
      endpoint: opt(httpUrl()),
      headers: opt(mapOf(str()), {}),
    }),
    {},
  ),
  /** Heartbeats + rollups in Redis (`state.redis.url`), read by every `/status` page. */
  fleet: opt(
    strictObject({
      enabled: opt(bool(), true),
      /** This sidecar's name on the page; default the host name and port. */
      name: opt(str()),
      interval: opt(duration(), "5s"),
    }),
    {},
  ),
});

/** A key's USD budgets; over one of them its requests get 429 until the period resets (UTC). */
const keyBudgetSchema = strictObject({
  daily_usd: opt(positive()),
  monthly_usd: opt(positive()),
});

/** A key defined in the config (Butter's `app_keys.keys[]`): never stored, hashed at load. */
const staticAppKeySchema = strictObject({
  key: v.pipe(str(), v.minLength(16, "An app key must be at least 16 characters")),
  /** Butter's `label`. */
  label: opt(str()),
  name: opt(str()),
  owner: opt(str()),
  /** Butter's model allowlist; empty or absent: every model. */
  allowed_models: opt(listOf(str()), []),
  allowed_providers: opt(listOf(str()), []),
  budget: opt(keyBudgetSchema),
});

/**
 * Application keys (`pf_...`): Butter's block (`enabled`, `require_key`, `header`,
 * `default_ttl`, static `keys[]`, `persistence`) plus budgets. Enabled by default once the
 * block asks for anything (`require_key` or static keys); `enabled: false` wins.
 */
const appKeysSchema = strictObject({
  enabled: opt(bool()),
  require_key: opt(bool(), false),
  /** A header carrying the key besides `Authorization: Bearer`. */
  header: opt(v.pipe(str(), v.regex(/^[A-Za-z0-9-]+$/, "Must be an HTTP header name"))),
  /** Lifetime of keys created without `expires_at`/`ttl_seconds`; unset: no expiry. */
  default_ttl: opt(duration()),
  keys: opt(listOf(staticAppKeySchema), []),
  persistence: opt(
    strictObject({
      /** Butter's switch; ours persists by default (to `state.path`). */
      enabled: opt(bool(), true),
      /** Butter's file path; default `state.path`. */
      path: opt(v.pipe(str(), v.minLength(1))),
      /** How often spend counters are written to the file. */
      flush_interval: opt(duration(), "1s"),
    }),
    {},
  ),
});

/**
 * The shared Redis: `url` (`redis://`, `rediss://` for TLS, a cluster's seed nodes as
 * `redis+cluster://host:port,host:port`, or Sentinels as `redis+sentinel://host:26379,.../name`),
 * or `cluster: [urls]` (one scheme for all), or `sentinel: {...}`, which become those URLs.
 */
const redisStateSchema = v.pipe(
  strictObject({
    url: opt(
      redisUrl(
        /^rediss?(\+cluster|\+sentinel)?:\/\/\S+$/,
        "Must be a redis://, rediss://, redis+cluster://, rediss+cluster://, " +
          "redis+sentinel:// or rediss+sentinel:// URL",
      ),
    ),
    cluster: opt(
      v.pipe(
        listOf(
          v.pipe(
            str(),
            v.check(
              (u) => /^rediss?:\/\/[^/\s,]+\/?$/.test(u),
              "Must be a redis:// or rediss:// URL",
            ),
          ),
        ),
        v.minLength(1, "List at least one node"),
        v.check(
          (urls) => new Set(urls.map((u) => u.split(":")[0])).size === 1,
          "Use one scheme (redis:// or rediss://) for every node",
        ),
      ),
    ),
    /** A Sentinel-managed master (see `sentinelSchema`). */
    sentinel: opt(sentinelSchema),
  }),
  v.check(
    (r) => [r.url, r.cluster, r.sentinel].filter((x) => x !== undefined).length <= 1,
    "Set one of url, cluster or sentinel",
  ),
  v.transform(({ url, cluster, sentinel }) => ({
    url: sentinel ??
      (cluster === undefined ? url ?? "redis://127.0.0.1:6379" : clusterUrl(cluster)),
    ...(cluster !== undefined ? { cluster } : {}),
  })),
);

/** `redis[s]+cluster://[auth@]host:port,...`: the nodes' scheme, the first node's credentials. */
function clusterUrl(nodes: readonly string[]): string {
  const first = new URL(nodes[0] as string);
  const auth = first.username || first.password
    ? `${first.username}${first.password ? `:${first.password}` : ""}@`
    : "";
  const hosts = nodes.map((u) => new URL(u).host).join(",");
  return `${first.protocol.slice(0, -1)}+cluster://${auth}${hosts}`;
}

/** `64MiB`, `512KB` (binary units) or a number of bytes -> bytes. */
const byteSize = () =>
  v.pipe(
    v.union([v.string(), v.number()]),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const m = /^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$/i.exec(String(dataset.value));
      if (m === null) {
        addIssue({ message: `Invalid size "${dataset.value}" (use e.g. "16MiB", "512KB")` });
        return NEVER;
      }
      const unit = (m[2] ?? "B").toUpperCase()[0]!;
      return Number(m[1]) * ({ B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[unit] ?? 1);
    }),
  );

/**
 * Butter's `wasm_plugins[]` (`name`, `path`, `config`: a string map the guest reads with
 * `config_get`) plus ours: which hooks, failure policy, a time and memory budget per call,
 * the hosts it may reach (none by default), and whether it sees credentials. See
 * plugins/README.md for the ABI.
 */
const wasmPluginSchema = strictObject({
  name: v.pipe(str(), v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "Plugin names are [A-Za-z0-9_.-]")),
  path: v.pipe(str(), v.minLength(1, "A plugin needs the path of its .wasm file")),
  config: opt(
    mapOf(v.pipe(v.union([v.string(), v.number(), v.boolean()]), v.transform(String))),
    {},
  ),
  hooks: opt(
    listOf(v.picklist(["pre_http", "pre_llm", "post_llm", "post_http", "stream_chunk"])),
  ),
  fail_mode: opt(v.picklist(["open", "closed"]), "open"),
  timeout: opt(
    v.pipe(duration(), v.minValue(1, "timeout is above 0 (a guest's run needs some time)")),
    "500ms",
  ),
  // Unset: sized from server.max_body_bytes (src/plugins/mod.ts, pluginMemory).
  max_memory: opt(
    // 4MiB is the guest's own (MEMORY_BASE in src/plugins/mod.ts); below 5MiB no input fits.
    v.pipe(
      byteSize(),
      v.minValue(
        5 * 1024 * 1024,
        "max_memory is at least 5MiB (4MiB for the guest itself, the rest for its input)",
      ),
      // A 32-bit guest addresses 4 GiB at most: a larger cap would promise inputs it cannot hold.
      v.maxValue(
        4 * 1024 * 1024 * 1024,
        "max_memory is at most 4GiB (a 32-bit guest's whole memory)",
      ),
    ),
  ),
  // Exact hosts: the permission planner grants each to the daemon, and Deno's grants
  // take no wildcards.
  allowed_hosts: opt(
    listOf(
      v.pipe(str(), v.regex(/^[A-Za-z0-9.-]+(:\d+)?$/, "allowed_hosts takes exact host names")),
    ),
    [],
  ),
  expose_credentials: opt(bool(), false),
  /** Worker instances at most (each in its own thread), for calls that spend their fuel. */
  instances: opt(int(1, 64), 2),
});

export const configSchema = strictObject({
  server: opt(serverSchema, {}),
  logging: opt(
    strictObject({
      level: opt(v.picklist(["debug", "info", "warn", "error"]), "info"),
      /** `json`: one JSON object per line; `console`: one readable line per event. */
      format: opt(v.picklist(["json", "console"]), "json"),
      /** Log request bodies (secrets redacted, truncated at `request_body_max_bytes`). */
      request_body: opt(bool(), false),
      request_body_max_bytes: opt(int(1), 4096),
    }),
    {},
  ),
  providers: opt(
    v.record(
      v.pipe(
        v.string(),
        v.regex(/^[a-z0-9][a-z0-9_-]*$/, "Provider names are lowercase [a-z0-9_-]"),
      ),
      providerSchema,
    ),
    {},
  ),
  routing: opt(routingSchema, {}),
  // Butter's plugin blocks (ratelimit, requestlog, metrics, tracing, wasm, ...).
  plugins: opt(
    v.objectWithRest({
      /** Butter's metrics plugin (`metrics: {}`): the same `/metrics` as `metrics.enabled`. */
      metrics: opt(strictObject({
        /** Butter's "add app_key label to all metrics": our `metrics.per_key` (which wins). */
        per_key_metrics: opt(bool()),
      })),
      tracing: opt(butterTracingSchema),
      ratelimit: opt(butterRateLimitSchema),
      requestlog: opt(butterRequestLogSchema),
    }, v.unknown()),
    {},
  ),
  wasm_plugins: opt(listOf(wasmPluginSchema), []),
  features: opt(
    strictObject({
      circuit_breaker: opt(circuitBreakerSchema, {}),
      rate_limiting: opt(rateLimitingSchema, {}),
      /**
       * llm-proxy's switch for its cost records. Off: no per-request cost fields (the
       * `x-pilotfish-cost-usd` header, the access log's `cost_usd`) and `/health` says so;
       * rollups and app key budgets still count cost. Its transports are not ours (warned).
       */
      cost_tracking: opt(strictObject({ enabled: opt(bool(), true) }), {}),
    }),
    {},
  ),
  state: opt(
    strictObject({
      backend: opt(v.picklist(["memory", "redis"]), "memory"),
      redis: opt(redisStateSchema, {}),
      /**
       * The embedded SQLite file when the backend is `memory`: usage rollups persist there only
       * when it is set; app keys persist there, or in `pilotfish-state.db` when it is unset.
       */
      path: opt(str(), ""),
    }),
    {},
  ),
  cache: opt(cacheSchema, {}),
  rate_limit: opt(rateLimitSchema, {}),
  metrics: opt(metricsSchema, {}),
  /** What `/v1/responses` keeps of translated answers (`previous_response_id`, GET, DELETE). */
  responses: opt(
    strictObject({
      store: opt(
        strictObject({
          /** Memory backend: JSON bytes kept, least recently used dropped first. */
          max_bytes: opt(int(1), 64 * 1024 * 1024),
          /** How long a response is kept (both backends; Redis expires the key). */
          ttl: opt(duration(), "720h"),
        }),
        {},
      ),
    }),
    {},
  ),
  app_keys: opt(appKeysSchema, {}),
  pricing: opt(pricingSchema, {}),
  telemetry: opt(telemetrySchema, {}),
});

type RawConfig = v.InferOutput<typeof configSchema>;
type RawProvider = v.InferOutput<typeof providerSchema>;

export type ProviderKeyConfig = v.InferOutput<typeof keySchema> & { readonly id: string };

/** A provider after presets are applied: type and base URL are always known. */
export interface ProviderConfig
  extends
    Omit<RawProvider, "type" | "base_url" | "keys" | "timeout" | "credential_mode" | "models"> {
  /** Model names this provider advertises (llm-proxy's map: its enabled entries). */
  readonly models: readonly string[];
  /** llm-proxy's `providers.<p>.models.<m>.pricing`, aliases included. */
  readonly model_pricing: Readonly<Record<string, ModelPrice>>;
  readonly name: string;
  /** Unified routes: `gateway` (configured keys; the default) or the client's credential. */
  readonly credential_mode: "gateway" | "passthrough";
  /**
   * Native passthrough routes: `passthrough` (the client's own credential, a configured key
   * only when it sent none) unless `credential_mode: gateway` is set explicitly.
   */
  readonly native_credential_mode: "gateway" | "passthrough";
  readonly type: (typeof PROVIDER_TYPES)[number];
  readonly base_url: string;
  readonly keys: readonly ProviderKeyConfig[];
  /**
   * Keys were written and every one was empty (an env var left unset): the provider has no
   * key, but was not meant to take the client's credential, nor `provider/...` names.
   */
  readonly keys_unset?: true;
  /** Per-attempt upstream timeout in ms (until response headers; whole body when not streaming). */
  readonly timeout: number;
}

export interface ServerConfig extends Omit<RawConfig["server"], "socket_mode"> {
  /** Parsed octal mode. */
  readonly socket_mode: number;
}

/** The validated, normalised configuration. Deeply frozen by `load.ts`. */
export interface Config extends Omit<RawConfig, "providers" | "server" | "routing"> {
  readonly routing: RoutingConfig;
  readonly server: ServerConfig;
  readonly providers: Readonly<Record<string, ProviderConfig>>;
}

export type LogLevel = RawConfig["logging"]["level"];
export type LoggingConfig = RawConfig["logging"];
export type CorsConfig = RawConfig["server"]["cors"];
export interface RoutingConfig extends Omit<RawConfig["routing"], "aliases"> {
  /** Normalised to `provider/model`. */
  readonly aliases: Readonly<Record<string, string>>;
}
export type ModelRouteConfig = RoutingConfig["models"][string];
export type FailoverConfig = RoutingConfig["failover"];
export type CircuitBreakerConfig = RawConfig["features"]["circuit_breaker"];
export type AppKeysConfig = RawConfig["app_keys"];
export type StaticAppKeyConfig = AppKeysConfig["keys"][number];
export type RateLimitingConfig = RawConfig["features"]["rate_limiting"];
export type RateLimitConfig = RawConfig["rate_limit"];
export type WasmPluginConfig = RawConfig["wasm_plugins"][number];

/**
 * Fill in a provider's type and base URL from its preset (null type means "unknown"), and
 * its credential mode for each kind of route: unified routes default to `gateway`, native
 * passthrough routes to the client's own credential unless `gateway` was set explicitly.
 */
export function resolveProvider(name: string, raw: RawProvider): Omit<ProviderConfig, "keys"> & {
  keys: RawProvider["keys"];
  typeKnown: boolean;
} {
  const preset = PROVIDER_PRESETS[name];
  const type = raw.type ?? preset?.type ?? (raw.base_url ? "openai" : undefined);
  return {
    ...raw,
    models: raw.models.list,
    model_pricing: raw.models.pricing,
    name,
    credential_mode: raw.credential_mode ?? "gateway",
    native_credential_mode: raw.credential_mode ?? "passthrough",
    type: type ?? "openai",
    typeKnown: type !== undefined,
    base_url: stripSlash(raw.base_url ?? preset?.base_url ?? ""),
  };
}

function stripSlash(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}
