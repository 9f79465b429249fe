/**
 * What the routes whose client schema is not the canonical one (`/v1/messages`,
 * `/v1/responses`) share: the client's body is kept as sent, its canonical (OpenAI chat) form
 * is translated on first need, and a `pre_llm` rewrite replaces that canonical form for every
 * provider.
 * @module
 */
import { type OpenAIChatRequest, parseChatRequest } from "../schema/openai.ts";
import type { Exchange } from "../pipeline/exchange.ts";

/** The part of such an exchange request the shared steps read and write. */
export interface TranslatedRequest {
  readonly body: { readonly model: string };
  canonical: OpenAIChatRequest | null;
  rewritten: boolean;
}

/** A `pre_llm` rewrite: validated like a client's chat body (400 naming the field). */
export function rewriteCanonical(ex: Exchange, r: TranslatedRequest, raw: unknown): void {
  r.canonical = parseChatRequest(raw).body;
  r.rewritten = true;
  ex.stream = r.canonical.stream === true;
}

/** The model asked for: the rewrite's once a stage rewrote the request, else the client's. */
export function requestedModel(r: TranslatedRequest): string {
  return r.rewritten && r.canonical ? r.canonical.model : r.body.model;
}
