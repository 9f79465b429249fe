/**
 * The native passthrough families (llm-proxy's `/openai/v1/*`, `/anthropic/v1/*`,
 * `/gemini/v1*`, `/bedrock/*`): which provider type each prefix reaches, which paths under it
 * are covered, where its path is appended, and the error envelope it answers in. Provider knowledge, so it lives here; the
 * passthrough route itself is generic.
 * @module
 */
import type { ProviderConfig } from "../config/mod.ts";
import type { ProviderType } from "../config/presets.ts";
import type { ErrorFormat } from "../pipeline/exchange.ts";

export interface NativeFamily {
  /** The route prefix, `/openai`. */
  readonly prefix: string;
  /** The provider type it reaches: the one named like the family, else the only one. */
  readonly type: ProviderType;
  readonly errorFormat: ErrorFormat;
  /**
   * The rests (the raw path after `prefix`) the family covers, PRODUCT's list: anything else
   * is a 404 before any upstream call, so no key is injected into a path nobody opened.
   */
  readonly paths: RegExp;
  /** `paths` for a client to read, in the 404. */
  readonly covers: string;
  /** Where the rest of the client's path is appended. */
  base(provider: ProviderConfig): string;
}

/** `https://host/api/v1` -> `https://host/api`; the native path brings its own version. */
function apiRoot(provider: ProviderConfig): string {
  return provider.base_url.replace(/\/v\d+(?:alpha|beta)?\d*$/, "");
}

/** A rest that names something: `/x...`, not "" or a bare `/`. */
const ANY_REST = /^\/[^/]/;

export const NATIVE_FAMILIES: readonly NativeFamily[] = [
  {
    prefix: "/openai",
    type: "openai",
    errorFormat: "openai_json",
    paths: /^\/v1\/[^/]/,
    covers: "/openai/v1/*",
    base: apiRoot,
  },
  {
    prefix: "/anthropic",
    type: "anthropic",
    errorFormat: "anthropic_json",
    paths: /^\/v1\/[^/]/,
    covers: "/anthropic/v1/*",
    base: apiRoot,
  },
  {
    prefix: "/gemini",
    type: "gemini",
    errorFormat: "google_rpc",
    // `/upload/v1beta/files`: the Files API's resumable uploads.
    paths: /^(?:\/upload)?\/v1(?:beta)?\/[^/]/,
    covers: "/gemini/v1/*, /gemini/v1beta/* and /gemini/upload/v1{,beta}/*",
    base: apiRoot,
  },
  // llm-proxy's contract for Bedrock: strip only `/bedrock`, keeping the raw path (`%3A` in
  // inference-profile ids) exactly as the client signed it, on the configured endpoint.
  {
    prefix: "/bedrock",
    type: "bedrock",
    errorFormat: "aws_json",
    paths: ANY_REST,
    covers: "/bedrock/*",
    base: (p) => p.base_url,
  },
];

/**
 * `/native/{provider}/*` (Butter's): that provider's `base_url` + the rest. Its errors are in
 * OpenAI's shape until the provider is known, then in the shape of the API it passes through
 * (an Anthropic SDK pointed there reads Anthropic errors), OpenAI's for types without a family.
 */
export const NATIVE_BY_NAME_FORMAT: ErrorFormat = "openai_json";

/** The error envelope of `type`'s native API. */
export function nativeErrorFormat(type: ProviderType): ErrorFormat {
  return NATIVE_FAMILIES.find((f) => f.type === type)?.errorFormat ?? NATIVE_BY_NAME_FORMAT;
}
/** The rests `/native/{provider}` covers: any that names something. */
export const NATIVE_BY_NAME_PATHS = ANY_REST;
