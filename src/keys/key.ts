/**
 * Application key values and the calendar their budgets run on: pure functions.
 * @module
 */
import { createHash } from "node:crypto";

/** Every key Pilotfish creates starts with this; passthrough routes never forward one. */
export const KEY_PREFIX = "pf_";

/** 32 random bytes (256 bits) as base64url: 43 characters after the prefix. */
const KEY_BYTES = 32;

/** A fresh key value: `pf_` + 256 bits from the platform's CSPRNG. Shown once, never stored. */
export function generateKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
  return KEY_PREFIX + base64url(bytes);
}

/** A minted key inside a text: `pf_` and 43 base64url characters, standing alone. */
const MINTED_KEY = /(?<![A-Za-z0-9_-])pf_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/;

/**
 * Take a `pf_` key out of the user a request body names (OpenAI's `user`, Anthropic's
 * `metadata.user_id`), in place: an app that sets its user id to its key would otherwise send
 * the key to the provider, and into the usage rollups (PRODUCT.md: never forwarded anywhere).
 * The field is dropped whole: what is left of an id around a key names nobody reliably.
 */
export function dropUserAppKeys(body: unknown): void {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return;
  const b = body as { user?: unknown; metadata?: unknown };
  if (typeof b.user === "string" && MINTED_KEY.test(b.user)) delete b.user;
  const meta = b.metadata as { user_id?: unknown } | null | undefined;
  if (
    meta !== null && typeof meta === "object" && typeof meta.user_id === "string" &&
    MINTED_KEY.test(meta.user_id)
  ) delete meta.user_id;
}

/** A fresh key id (not secret: it names the key in the admin API and the log). */
export function generateId(): string {
  return "key_" + hex(crypto.getRandomValues(new Uint8Array(8)));
}

/**
 * How a key is stored: SHA-256, hex. Keys are 256-bit random strings, so a fast unsalted
 * hash is enough (nothing to brute-force, unlike a password) and keeps the lookup O(1).
 */
export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** The id of a key defined in the config: stable across restarts, derived from its hash. */
export function staticId(hash: string): string {
  return "cfg_" + hash.slice(0, 16);
}

const SDK_KEY_HEADERS = ["x-api-key", "x-goog-api-key", "api-key"] as const;

/** The last characters of a key, to tell keys apart in listings without revealing them. */
export function keyHint(key: string): string {
  // Only `pf_` is not secret at the start: a static key's own first characters are.
  const prefix = key.startsWith("pf_") ? "pf_" : "";
  // The last four of a short key would be much of it.
  return key.length >= 16 ? `${prefix}\u2026${key.slice(-4)}` : `${prefix}\u2026`;
}

/**
 * The key a request presents: the first of `headers` present, else `Authorization: Bearer
 * <key>`, `x-api-key`, `x-goog-api-key`, Azure's `api-key` or the query's `key` (`?key` in `header`), when that
 * value is an app key by `isAppKey` (a `pf_` key or a configured one; any other value is the
 * client's provider credential). Null when none. Every place a provider SDK puts its key is
 * read: passthrough drops an app key from all of them, so one not checked here would pass
 * unchecked (revoked, over budget, outside its allowlist).
 */
export function presentedKey(
  get: (name: string) => string | null,
  headers: readonly string[],
  isAppKey: (value: string) => boolean,
  search = "",
): { value: string; header: string } | null {
  for (const name of headers) {
    const v = get(name)?.trim();
    if (v) return { value: v, header: name };
  }
  const auth = get("authorization");
  if (auth !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m && isAppKey(m[1] as string)) return { value: m[1] as string, header: "authorization" };
  }
  // Anthropic's SDKs send their key as `x-api-key`, Google's as `x-goog-api-key` or `?key=`,
  // Azure's as `api-key`.
  for (const name of SDK_KEY_HEADERS) {
    const v = get(name)?.trim();
    if (v && isAppKey(v)) return { value: v, header: name };
  }
  if (search.includes("key=")) {
    const v = new URLSearchParams(search).get("key")?.trim();
    if (v && isAppKey(v)) return { value: v, header: "?key" };
  }
  return null;
}

/** UTC calendar periods: the counters a budget is checked against. */
export interface Periods {
  /** `YYYY-MM-DD` */
  readonly day: string;
  /** `YYYY-MM` */
  readonly month: string;
  /** When the day and the month end (ms, wall clock). */
  readonly dayResetsAt: number;
  readonly monthResetsAt: number;
}

export function periodsAt(nowMs: number): Periods {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const iso = d.toISOString();
  return {
    day: iso.slice(0, 10),
    month: iso.slice(0, 7),
    dayResetsAt: Date.UTC(y, m, d.getUTCDate() + 1),
    monthResetsAt: Date.UTC(y, m + 1, 1),
  };
}

/**
 * `periodsAt` for a clock that mostly stays within one day: recomputed only when the day
 * changes (or the clock steps back), so the hot path does no date formatting.
 */
export function periodClock(): (nowMs: number) => Periods {
  let current = periodsAt(0);
  let dayStart = 0;
  return (nowMs) => {
    if (nowMs >= current.dayResetsAt || nowMs < dayStart) {
      current = periodsAt(nowMs);
      dayStart = current.dayResetsAt - 86_400_000;
    }
    return current;
  };
}

/** USD as integer micro-dollars: counters add exactly (and Redis INCRBY takes integers). */
export function toMicros(usd: number): number {
  return Math.round(usd * 1_000_000);
}

export function fromMicros(micros: number): number {
  return micros / 1_000_000;
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
