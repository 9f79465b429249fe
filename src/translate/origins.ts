/**
 * Where each message of a translated request came from, kept on the canonical request for
 * its error paths. Non-enumerable on purpose: a stage's spread copy of a rewritten body (whose
 * messages may differ) must not carry stale origins, and JSON never sends them upstream.
 * @module
 */
import type { OpenAIChatRequest } from "../schema/openai.ts";

/** A per-format record of origins: `attach` at translation, `read` on an error. */
export function originsSlot<O>(name: string): {
  attach<T extends OpenAIChatRequest>(body: T, origins: O[]): T;
  read(body: OpenAIChatRequest | null): readonly O[] | null;
} {
  const key = Symbol(name);
  return {
    attach(body, origins) {
      Object.defineProperty(body, key, { value: origins });
      return body;
    },
    read: (body) => (body as { [key]?: O[] } | null)?.[key] ?? null,
  };
}
