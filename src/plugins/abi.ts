/**
 * Butter's plugin ABI as data: the JSON a hook gets and what its answer may say. Pure:
 * building the input (headers one value each, credentials redacted unless the plugin opts
 * in) and reading the output (validated field by field, since it comes from a guest).
 * @module
 */
import type { HookName } from "./binary.ts";
import type { Redactor } from "../telemetry/redact.ts";

/** What every hook gets (fields a hook has nothing for are absent). */
export interface HookInput {
  readonly hook: HookName;
  readonly provider?: string;
  readonly model?: string;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  readonly metadata?: Readonly<Metadata>;
  /** Ours: the response status on `post_llm` / `post_http`. */
  readonly status?: number;
  /** Ours: the chunk on `stream_chunk`. */
  readonly chunk?: unknown;
}

/** What a guest may answer; an empty output means no change. */
export interface HookOutput {
  readonly body?: unknown;
  readonly metadata?: Readonly<Metadata>;
  readonly short_circuit?: boolean;
  readonly short_circuit_status?: number;
  readonly short_circuit_body?: unknown;
  /** Ours: headers added to the response (`x-` names only). */
  readonly response_headers?: Readonly<Record<string, string>>;
  /** Ours, `stream_chunk`: the replacement chunk, or null to drop it. */
  readonly chunk?: Record<string, unknown> | null;
  /** Ours, `stream_chunk`: drop the chunk. */
  readonly drop?: boolean;
}

/**
 * Butter's metadata bag (its SDK's `map[string]any`): any JSON value per key, kept as the guest
 * wrote it, so a later guest reading `prompt_injection_detected == true` sees a boolean.
 */
export type Metadata = Record<string, unknown>;

/** A guest's output that does not follow the ABI. */
export class AbiError extends Error {
  override readonly name = "AbiError";
}

const REDACTED = "[REDACTED]";
/**
 * Header names that carry credentials: the known ones, and any name with one of these words
 * anywhere in it (`x-apitoken`, `x-secretkey`, `x-jwt`, `x-pilotfish-app-key`). A false
 * positive costs a plugin one header; a miss hands it a secret.
 */
const CREDENTIAL_HEADER =
  /^(authorization|proxy-authorization|x-amz-security-token)$|token|secret|key|auth|bearer|jwt|passw|session|cookie|credential|signature/i;
/** Values that are credentials whatever their header: HTTP auth schemes, API and app keys. */
const CREDENTIAL_VALUE = /^\s*(bearer|basic|digest|negotiate)\s|^\s*(sk-|pf_)/i;

/**
 * Headers as Butter passes them: one value each, named as Go's `http.Header` names them
 * (`Content-Type`, `X-Tenant-Id`: a Butter guest looks them up so), credentials redacted unless
 * exposed. `redact` scrubs configured secrets from text: a value it changes holds one.
 */
export function headerMap(
  headers: Headers,
  exposeCredentials: boolean,
  redact?: Redactor,
): Record<string, string> {
  const out: Record<string, string> = {};
  // Exposed: nothing to look for (the redactor is the costly part, every key's forms).
  const holds = exposeCredentials || redact === undefined
    ? undefined
    : redact.holds ?? ((text: string) => redact(text) !== text);
  headers.forEach((value, name) => {
    out[canonicalName(name)] = exposeCredentials || !secretHeader(name, value, holds)
      ? value
      : REDACTED;
  });
  return out;
}

/** Canonical names already built: a client sends the same few names on every request. */
const CANONICAL = new Map<string, string>();
const CANONICAL_MAX = 1024;

/**
 * Go's `textproto.CanonicalMIMEHeaderKey` for a name `Headers` gives (a valid token, lower
 * case): the first letter and each letter after a hyphen upper case, the rest lower case.
 */
export function canonicalName(name: string): string {
  let out = CANONICAL.get(name);
  if (out !== undefined) return out;
  out = name.toLowerCase().replace(
    /(^|-)([a-z])/g,
    (_, dash: string, c: string) => dash + c.toUpperCase(),
  );
  if (CANONICAL.size >= CANONICAL_MAX) CANONICAL.clear();
  CANONICAL.set(name, out);
  return out;
}

function secretHeader(
  name: string,
  value: string,
  holds: ((text: string) => boolean) | undefined,
): boolean {
  return CREDENTIAL_HEADER.test(name) || CREDENTIAL_VALUE.test(value) ||
    (holds !== undefined && holds(value));
}

/**
 * Response headers that are the gateway's to set (what it reports about the request: routing,
 * rate limits, the cache, llm-proxy's signals), which a plugin may not overwrite.
 * `x-pilotfish-injection` is the exception: the shipped guard's `tag` mode sets it (PRODUCT.md).
 */
const GATEWAY_HEADER =
  /^(x-pilotfish-(?!injection$)|x-ratelimit-|x-llm-proxy-|x-request-id$|x-cache$|x-butter-cache$)/i;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8", { fatal: true });

/** The input as the guest reads it; `scrub` rewrites its JSON text first (keys taken out). */
export function encodeInput(input: HookInput, scrub?: (json: string) => string): Uint8Array {
  const json = JSON.stringify(input);
  return ENCODER.encode(scrub === undefined ? json : scrub(json));
}

/** Input fields a guest may do without (`INPUT_FIELDS`); `hook`, `provider`, `model`, `status`
 * and `chunk` are always given. */
export const OPTIONAL_INPUT = ["body", "headers", "metadata"] as const;
export type OptionalInput = (typeof OPTIONAL_INPUT)[number];
/** Which optional input fields a guest is given. */
export type InputFields = Readonly<Record<OptionalInput, boolean>>;
/** A guest that does not say (every Butter guest) is given every field. */
export const ALL_INPUT: InputFields = { body: true, headers: true, metadata: true };

/**
 * A guest's `INPUT_FIELDS` answer (a JSON list of field names) -> the fields it is given. An
 * answer that is not such a list, or names a field there is not, is an `AbiError`: a typo
 * must not leave a guest without what it reads.
 */
export function decodeInputFields(bytes: Uint8Array): InputFields {
  let list: unknown;
  try {
    list = JSON.parse(DECODER.decode(bytes));
  } catch {
    list = undefined;
  }
  if (!Array.isArray(list)) {
    const text = new TextDecoder().decode(bytes.subarray(0, 80));
    throw new AbiError(
      `answered ${JSON.stringify(text)}, not a JSON list of ${OPTIONAL_INPUT.join(", ")}`,
    );
  }
  const out: Record<OptionalInput, boolean> = { body: false, headers: false, metadata: false };
  for (const name of list) {
    if (!(OPTIONAL_INPUT as readonly unknown[]).includes(name)) {
      throw new AbiError(
        `lists ${JSON.stringify(name)}; the fields a guest may list are ${
          OPTIONAL_INPUT.join(", ")
        }`,
      );
    }
    out[name as OptionalInput] = true;
  }
  return out;
}

/**
 * The output fields each hook may answer with. A field that does not apply (a short-circuit
 * after the provider answered, a body on `post_http`) is an error of the output, like a field
 * of the wrong type: it follows the plugin's `fail_mode` instead of being ignored.
 */
/** Before the provider call: a pre hook may rewrite, short-circuit or tag. */
const PRE_FIELDS: ReadonlySet<keyof HookOutput> = new Set([
  "body",
  "metadata",
  "short_circuit",
  "short_circuit_status",
  "short_circuit_body",
  "response_headers",
]);

export const HOOK_FIELDS: Readonly<Record<HookName, ReadonlySet<keyof HookOutput>>> = {
  pre_http: PRE_FIELDS,
  pre_llm: PRE_FIELDS,
  post_llm: new Set(["body", "metadata", "response_headers"]),
  post_http: new Set(["metadata", "response_headers"]),
  stream_chunk: new Set(["chunk", "drop", "metadata"]),
};

/**
 * The guest's output bytes -> a checked `HookOutput` (an `AbiError` says what is wrong). With
 * `hook`, a field that does not apply to it is an error too. Zero values (what a Go struct
 * always carries: `short_circuit: false`, status 0, an empty body string) count as absent.
 */
export function decodeOutput(bytes: Uint8Array, hook?: HookName): HookOutput {
  const decoded = decodeFields(bytes);
  // `chunk: null` is a Go struct's zero value too, except where it means "drop".
  const { chunk: _zero, ...rest } = decoded;
  const out: HookOutput = hook !== undefined && hook !== "stream_chunk" && decoded.chunk === null
    ? rest
    : decoded;
  if (hook !== undefined) {
    const allowed = HOOK_FIELDS[hook];
    for (const field of Object.keys(out) as (keyof HookOutput)[]) {
      if (!allowed.has(field)) throw new AbiError(`${field} does not apply to ${hook}`);
    }
  }
  return out;
}

function decodeFields(bytes: Uint8Array): HookOutput {
  let text: string;
  try {
    text = DECODER.decode(bytes);
  } catch {
    throw new AbiError("output is not UTF-8");
  }
  if (text.trim() === "") return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AbiError(`output is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new AbiError("output is not a JSON object");
  }
  const o = raw as Record<string, unknown>;
  const out: { -readonly [K in keyof HookOutput]: HookOutput[K] } = {};
  if (o.body !== undefined && o.body !== null && o.body !== "") out.body = o.body;
  if (o.metadata !== undefined && o.metadata !== null) {
    if (typeof o.metadata !== "object" || Array.isArray(o.metadata)) {
      throw new AbiError("metadata is not a JSON object");
    }
    out.metadata = o.metadata as Metadata;
  }
  if (o.response_headers !== undefined && o.response_headers !== null) {
    const h = stringMap(o.response_headers, "response_headers");
    for (const name of Object.keys(h)) {
      if (!/^x-[a-z0-9-]+$/i.test(name)) {
        throw new AbiError(`response_headers may only add x- headers, not "${name}"`);
      }
      if (GATEWAY_HEADER.test(name)) {
        throw new AbiError(`response_headers may not set the gateway's own "${name}"`);
      }
    }
    if (Object.keys(h).length > 0) out.response_headers = h;
  }
  if (o.short_circuit !== undefined && o.short_circuit !== null) {
    if (typeof o.short_circuit !== "boolean") throw new AbiError("short_circuit is not a boolean");
    if (o.short_circuit) out.short_circuit = true;
  }
  if (o.short_circuit_status !== undefined && o.short_circuit_status !== null) {
    const s = o.short_circuit_status;
    if (typeof s !== "number" || !Number.isInteger(s) || (s !== 0 && (s < 200 || s > 599))) {
      throw new AbiError("short_circuit_status is not 0 or an HTTP status (200-599)");
    }
    if (s !== 0) out.short_circuit_status = s;
  }
  if (
    o.short_circuit_body !== undefined && o.short_circuit_body !== null &&
    o.short_circuit_body !== ""
  ) {
    out.short_circuit_body = o.short_circuit_body;
  }
  if ("chunk" in o) {
    const c = o.chunk;
    if (c !== null && (typeof c !== "object" || Array.isArray(c))) {
      throw new AbiError("chunk is not a JSON object or null");
    }
    out.chunk = c as Record<string, unknown> | null;
  }
  if (o.drop !== undefined && o.drop !== null) {
    if (typeof o.drop !== "boolean") throw new AbiError("drop is not a boolean");
    if (o.drop) out.drop = true;
  }
  return out;
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AbiError(`${field} is not a JSON object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
    else throw new AbiError(`${field}.${k} is not a string`);
  }
  return out;
}

/** A short-circuit body as the guest wrote it. */
export type ShortCircuitBody =
  | { readonly kind: "none" }
  | { readonly kind: "json"; readonly value: unknown }
  | { readonly kind: "text"; readonly value: string };

/**
 * Read a short-circuit body: absent (or an empty string), a JSON value, a string holding JSON
 * (what a Go `string` field carries), or a string that is not JSON (plain text).
 */
export function shortCircuitBody(body: unknown): ShortCircuitBody {
  if (body === undefined || body === null || body === "") return { kind: "none" };
  if (typeof body !== "string") return { kind: "json", value: body };
  try {
    return { kind: "json", value: JSON.parse(body) };
  } catch {
    return { kind: "text", value: body };
  }
}

/** The message of an error-shaped body (`{error:{message}}`, `{message}`, `{error:"..."}`). */
export function errorMessage(body: unknown): string | undefined {
  if (typeof body === "string") return body.slice(0, 1000);
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    const inner = b.error && typeof b.error === "object" ? b.error as Record<string, unknown> : b;
    if (typeof inner.message === "string") return inner.message;
    if (typeof b.error === "string") return b.error;
  }
  return undefined;
}

/**
 * Why a guest's replacement chunk is not a `chat.completion.chunk` the encoders can read,
 * or null when it is. `choices` is required (empty for a usage-only chunk); each choice
 * needs a `delta` object; the fields the encoders read must have their types.
 */
export function chunkProblem(c: Record<string, unknown>): string | null {
  if (!Array.isArray(c.choices)) return "chunk.choices is not an array";
  for (const [i, choice] of c.choices.entries()) {
    const at = `chunk.choices[${i}]`;
    if (!isObject(choice)) return `${at} is not an object`;
    if (choice.index !== undefined && !Number.isInteger(choice.index)) {
      return `${at}.index is not an integer`;
    }
    if (!nullable(choice.finish_reason, "string")) return `${at}.finish_reason is not a string`;
    const delta = choice.delta;
    if (!isObject(delta)) return `${at}.delta is not an object`;
    if (!nullable(delta.content, "string")) return `${at}.delta.content is not a string`;
    if (!nullable(delta.refusal, "string")) return `${at}.delta.refusal is not a string`;
    if (delta.role !== undefined && typeof delta.role !== "string") {
      return `${at}.delta.role is not a string`;
    }
    if (delta.tool_calls !== undefined && !objects(delta.tool_calls)) {
      return `${at}.delta.tool_calls is not a list of objects`;
    }
  }
  return metaProblem(c, "chunk", "chat.completion.chunk");
}

/**
 * Why a guest's `post_llm` body is not the canonical answer of `schema` (a `chat.completion`
 * with at least one choice holding a `message`, or an embeddings `list`), or null when it is.
 */
export function answerProblem(body: Record<string, unknown>, schema: string | null): string | null {
  if (schema === "embeddings") {
    if (!Array.isArray(body.data) || !body.data.every((d) => isObject(d))) {
      return "body.data is not a list of objects";
    }
    return body.usage === undefined || isObject(body.usage) ? null : "body.usage is not an object";
  }
  if (!Array.isArray(body.choices) || body.choices.length === 0) {
    return "body.choices is not a non-empty array";
  }
  for (const [i, choice] of body.choices.entries()) {
    const at = `body.choices[${i}]`;
    if (!isObject(choice)) return `${at} is not an object`;
    if (!nullable(choice.finish_reason, "string")) return `${at}.finish_reason is not a string`;
    const message = choice.message;
    if (!isObject(message)) return `${at}.message is not an object`;
    const content = message.content;
    if (
      content !== undefined && content !== null && typeof content !== "string" &&
      !objects(content)
    ) {
      return `${at}.message.content is not a string or a list of parts`;
    }
    if (message.tool_calls !== undefined && !objects(message.tool_calls)) {
      return `${at}.message.tool_calls is not a list of objects`;
    }
  }
  return metaProblem(body, "body", "chat.completion");
}

/** The fields around the choices: absent or of their type. */
function metaProblem(o: Record<string, unknown>, name: string, object: string): string | null {
  if (o.id !== undefined && typeof o.id !== "string") return `${name}.id is not a string`;
  if (o.model !== undefined && typeof o.model !== "string") return `${name}.model is not a string`;
  if (o.created !== undefined && typeof o.created !== "number") {
    return `${name}.created is not a number`;
  }
  if (o.object !== undefined && o.object !== object) return `${name}.object is not "${object}"`;
  if (!nullable(o.usage, "object")) return `${name}.usage is not an object`;
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Absent, null, or of `type` (an object is not an array). */
function nullable(v: unknown, type: "string" | "object"): boolean {
  if (v === undefined || v === null) return true;
  return type === "object" ? isObject(v) : typeof v === "string";
}

function objects(v: unknown): boolean {
  return Array.isArray(v) && v.every(isObject);
}
