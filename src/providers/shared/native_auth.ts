/**
 * Where a wire format carries a credential on its native API: what the native passthrough
 * routes look at to tell whether a client brought its own, and where a configured key goes
 * when one is injected. Each provider declares its own (`native.ts` in its folder).
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

/** `Authorization: Bearer <key>`, the OpenAI convention most APIs follow. */
export const BEARER_AUTH: NativeAuth = {
  headers: ["authorization"],
  queryParam: null,
  header: (key) => ["authorization", `Bearer ${key}`],
};
