import { pilotfishHeaders } from "../routing/mod.ts";
import { GatewayError } from "../errors.ts";
import { parseEmbeddingsRequest } from "../schema/embeddings.ts";
import { isObject, type OpenAIEmbeddingsRequest } from "../schema/openai.ts";
import { encodeEmbeddings } from "../pipeline/encode/openai.ts";
import type { Exchange } from "../pipeline/exchange.ts";
import type { UnifiedRoute } from "../pipeline/run.ts";
import { unifiedHandler } from "./unified.ts";
import type { JsonOutcome, Usage } from "../providers/types.ts";
import { knownUsage, usageNow } from "../streaming/mod.ts";

const UTF8 = new TextDecoder();
import { promptEstimate } from "../usage/mod.ts";

function body(ex: Exchange): OpenAIEmbeddingsRequest {
  return (ex.request as { body: OpenAIEmbeddingsRequest }).body;
}

/** The OpenAI Embeddings API as the pipeline sees it: any provider that has embeddings. */
export const EMBEDDINGS_ROUTE: UnifiedRoute = {
  schema: "embeddings",
  decode(ex, raw) {
    const { body, gateway } = parseEmbeddingsRequest(raw);
    ex.request = { schema: "embeddings", body };
    return { model: body.model, gateway };
  },
  view: (ex) => ({ schema: "embeddings", body: body(ex) }),
  rewrite(ex, raw) {
    ex.request = { schema: "embeddings", body: parseEmbeddingsRequest(raw).body };
  },
  model: (ex) => body(ex).model,
  candidates(ex, resolved) {
    // Only providers with an embeddings API are candidates (chat-only ones are not failures).
    const targets = resolved.targets.filter((t) => ex.runtime.adapters.get(t.provider)?.embeddings);
    if (targets.length === 0) {
      const first = resolved.targets[0];
      throw new GatewayError(
        "invalid_request",
        `Provider "${first.provider}" has no embeddings API`,
        // The provider routing chose, though nothing was asked of it.
        { param: "model", headers: pilotfishHeaders(first.provider, first.model, 0) },
      );
    }
    return targets;
  },
  invoke(ex) {
    const request = body(ex);
    return (adapter, attempt, model) => {
      if (!adapter.embeddings) {
        return Promise.reject(
          new GatewayError("invalid_request", `Provider "${adapter.name}" has no embeddings API`, {
            param: "model",
          }),
        );
      }
      return adapter.embeddings({ ...attempt, body: request }, model).then((o) => uncounted(o, ex));
    };
  },
  encode: encodeEmbeddings,
};

/**
 * An answer whose upstream counted nothing (Gemini's batchEmbedContents, OpenAI-compatible
 * servers that send no `usage`): embedding any input takes tokens, so they are estimated from
 * the input (~4 characters a token) and billed, held to budgets and logged `usage_estimated`
 * instead of 0. An answer we built says the same in its `usage` (a relayed one is left as sent).
 */
function uncounted(outcome: JsonOutcome, ex: Exchange): JsonOutcome {
  const u = usageNow(outcome.usage);
  if (u != null && (u.prompt_tokens > 0 || u.total_tokens > 0)) return outcome;
  const tokens = promptEstimate(ex);
  const usage: Usage = {
    prompt_tokens: tokens,
    completion_tokens: 0,
    total_tokens: tokens,
    estimated: true,
  };
  // OpenAI's embeddings answer always has `usage` (SDKs read it): the estimate, as billed.
  const counted = { prompt_tokens: tokens, total_tokens: tokens };
  if (outcome.format === "object") {
    return { ...outcome, body: { ...outcome.body, usage: counted }, usage: knownUsage(usage) };
  }
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(UTF8.decode(outcome.body));
  } catch { /* not JSON: relayed as it came */ }
  return isObject(parsed)
    ? {
      ...outcome,
      format: "object",
      body: { ...parsed, usage: counted },
      usage: knownUsage(usage),
    } as JsonOutcome
    : { ...outcome, usage: knownUsage(usage) } as JsonOutcome;
}

/** `POST /v1/embeddings`: OpenAI-shape embeddings from any provider that has them. */
export const embeddings = unifiedHandler(EMBEDDINGS_ROUTE, "openai_json");
