/**
 * What the routes whose client schema is not the canonical one (`/v1/messages`,
 * `/v1/responses`) share: the client's body is kept as sent, its canonical (OpenAI chat) form
 * is translated on first need, and a `pre_llm` rewrite replaces that canonical form for every
 * provider.
 * @module
 */
import { type OpenAIChatRequest, parseChatRequest } from "../schema/openai.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import { GatewayError } from "../errors.ts";

/** The part of such an exchange request the shared steps read and write. */
export interface TranslatedRequest {
  readonly body: { readonly model: string };
  canonical: OpenAIChatRequest | null;
  rewritten: boolean;
  /** The stages' view left out what only a provider of the client's schema honours. */
  lossy?: boolean;
}

/**
 * A `pre_llm` rewrite: validated like a client's chat body (400 naming the field). Of a lossy
 * view (`leftOut` says what it leaves out) it is refused: sent on, it would silently drop that.
 */
export function rewriteCanonical(
  ex: Exchange,
  r: TranslatedRequest,
  raw: unknown,
  leftOut?: string,
): void {
  if (r.lossy) {
    throw new GatewayError(
      "invalid_request",
      `A pre_llm stage rewrote this request, but its canonical form leaves out what only ${leftOut}: it cannot be sent as rewritten`,
    );
  }
  r.canonical = parseChatRequest(raw).body;
  r.rewritten = true;
  ex.stream = r.canonical.stream === true;
}

/** The model asked for: the rewrite's once a stage rewrote the request, else the client's. */
export function requestedModel(r: TranslatedRequest): string {
  return r.rewritten && r.canonical ? r.canonical.model : r.body.model;
}
