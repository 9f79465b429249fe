import { GatewayError } from "../errors.ts";

/** llm-gateway's `x-gateway` body extension; stripped before forwarding. */
export interface GatewayOptions {
  cache?: boolean;
  /** Seconds. */
  timeout?: number;
  /** Seconds: this request's `routing.failover.first_chunk_timeout`. */
  first_chunk_timeout?: number;
  /** Seconds: this request's `routing.failover.stream_idle_timeout`. */
  stream_idle_timeout?: number;
  provider?: string;
  metadata?: Record<string, unknown>;
}

const invalid = (message: string, param: string) =>
  new GatewayError("invalid_request", message, { param });

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Validate the `x-gateway` block shared by every unified route (absent -> `{}`). */
/** The longest timeout a request may ask for, in seconds (a timer's 2^31-1 ms). */
const MAX_SECONDS = 2_147_483;

export function parseGatewayOptions(raw: unknown): GatewayOptions {
  if (raw === undefined || raw === null) return {};
  if (!isObject(raw)) throw invalid(`"x-gateway" must be an object`, "x-gateway");
  const out: GatewayOptions = {};
  if (raw.cache !== undefined) {
    if (typeof raw.cache !== "boolean") {
      throw invalid(`"x-gateway.cache" must be a boolean`, "x-gateway.cache");
    }
    out.cache = raw.cache;
  }
  for (const field of ["timeout", "first_chunk_timeout", "stream_idle_timeout"] as const) {
    const v = raw[field];
    if (v === undefined) continue;
    // A timer takes at most 2^31-1 ms; JSON's 1e400 parses as Infinity.
    if (typeof v !== "number" || !(v > 0) || v > MAX_SECONDS) {
      throw invalid(
        `"x-gateway.${field}" must be a positive number of seconds, at most ${MAX_SECONDS}`,
        `x-gateway.${field}`,
      );
    }
    out[field] = v;
  }
  if (raw.provider !== undefined) {
    if (typeof raw.provider !== "string" || raw.provider === "") {
      throw invalid(`"x-gateway.provider" must be a provider name`, "x-gateway.provider");
    }
    out.provider = raw.provider;
  }
  if (raw.metadata !== undefined) {
    if (!isObject(raw.metadata)) {
      throw invalid(`"x-gateway.metadata" must be an object`, "x-gateway.metadata");
    }
    out.metadata = raw.metadata;
  }
  return out;
}
