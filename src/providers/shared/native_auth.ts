import type { ProviderType } from "../../config/presets.ts";

/**
 * Where each wire format carries a credential on its native API: what the native
 * passthrough routes look at to tell whether a client brought its own, and where a
 * configured key goes when one is injected.
 * @module
 */

/** Every header an SDK of any supported API sends a credential in. */
export const CREDENTIAL_HEADERS: readonly string[] = [
  "authorization",
  "x-api-key",
  "x-goog-api-key",
  "api-key",
];

export interface NativeAuth {
  /** Headers this API's clients authenticate with. */
  readonly headers: readonly string[];
  /** Query parameter carrying an API key, when the API accepts one (Gemini's `?key=`). */
  readonly queryParam: string | null;
  /** The header (name, value) that carries a configured key. */
  header(key: string): [string, string];
}

const bearer = (key: string): [string, string] => ["authorization", `Bearer ${key}`];

const AUTH: Readonly<Record<ProviderType, NativeAuth>> = {
  openai: { headers: ["authorization"], queryParam: null, header: bearer },
  // Azure takes `api-key`, or an Entra ID token as Bearer.
  azure: { headers: ["api-key", "authorization"], queryParam: null, header: (k) => ["api-key", k] },
  // Anthropic SDKs send `x-api-key`, or `Authorization: Bearer` (newer versions, OAuth).
  anthropic: {
    headers: ["x-api-key", "authorization"],
    queryParam: null,
    header: (k) => ["x-api-key", k],
  },
  gemini: {
    headers: ["x-goog-api-key", "authorization"],
    queryParam: "key",
    header: (k) => ["x-goog-api-key", k],
  },
  // SigV4 (`Authorization: AWS4-HMAC-SHA256 …`) or a Bedrock API key as Bearer.
  bedrock: { headers: ["authorization"], queryParam: null, header: bearer },
  mock: { headers: ["authorization"], queryParam: null, header: bearer },
};

export function nativeAuthFor(type: ProviderType): NativeAuth {
  return AUTH[type];
}
