/**
 * Label values for metrics, spans and the status page, bounded and secret-free. Pure.
 * @module
 */
import type { Config } from "../config/mod.ts";
import { GatewayError } from "../errors.ts";
import { BUILTIN_PRICES } from "../usage/pricing.ts";
import type { Exchange } from "../pipeline/exchange.ts";

/** The label a model outside the configured set collapses to. */
export const OTHER = "other";

/**
 * The model names a config names (provider model lists, key allowlists, `routing.models`,
 * aliases on both sides, prices, bare and `provider/`-prefixed) and the built-in price table's
 * (`gpt-4o`, `claude-sonnet-4-5`: llm-gateway labels its cost series by them), each also after
 * a configured provider's prefix (`openai/gpt-4o`): the only values a `model` label may take,
 * so a client flooding made-up names cannot grow the series.
 */
export function knownModels(config: Config): ReadonlySet<string> {
  const out = new Set<string>();
  const add = (name: string) => {
    out.add(name);
    const slash = name.indexOf("/");
    if (slash > 0) out.add(name.slice(slash + 1));
  };
  for (const [name, p] of Object.entries(config.providers)) {
    for (const m of p.models) {
      add(m);
      out.add(`${name}/${m}`);
    }
    for (const k of p.keys) for (const m of k.models) add(m);
  }
  for (const m of Object.keys(config.routing.models)) add(m);
  for (const [alias, target] of Object.entries(config.routing.aliases)) {
    add(alias);
    add(target);
  }
  for (const m of Object.keys(config.pricing.models)) add(m);
  for (const p of Object.values(config.providers)) {
    for (const m of Object.keys(p.model_pricing)) add(m);
  }
  if (config.pricing.builtin) { for (const m of Object.keys(BUILTIN_PRICES)) add(m); }
  // `provider/model` as a client names it on the unified routes: a configured provider and a
  // known model (still bounded by the config).
  const bare = [...out].filter((m) => !m.includes("/"));
  for (const provider of Object.keys(config.providers)) {
    for (const m of bare) out.add(`${provider}/${m}`);
  }
  return out;
}

/** `model` as a label: itself when configured, else `other`. */
export function modelLabel(known: ReadonlySet<string>, model: string | undefined): string {
  return model !== undefined && known.has(model) ? model : OTHER;
}

/** `gen_ai.operation.name` of an inbound API. */
export function operationName(ex: Exchange): string {
  const schema = ex.schema;
  if (schema === "passthrough") return passthroughOperation(ex.path);
  return schema === "embeddings" ? "embeddings" : "chat";
}

/**
 * A native route's operation, read off the provider path it relays: `.../embeddings`,
 * `:embedContent`, Titan/Cohere `.../invoke` of an embedding model -> embeddings; legacy
 * `.../completions` -> text_completion; `:generateContent` -> generate_content; chat otherwise.
 */
export function passthroughOperation(path: string): string {
  if (/embed/i.test(path)) return "embeddings";
  if (/generatecontent/i.test(path)) return "generate_content";
  if (/\/completions$/.test(path) && !/\/chat\/completions$/.test(path)) return "text_completion";
  return "chat";
}

/** Whether an operation produces output tokens (GenAI semconv: embeddings count input only). */
export function hasOutputTokens(operation: string): boolean {
  return operation !== "embeddings";
}

/** The model the client asked for, from the decoded request (null before decoding). */
export function requestedModel(ex: Exchange): string | undefined {
  const r = ex.request;
  // A native route routes nothing: the model is what its body or path named.
  if (r === null || r.schema === "passthrough") return ex.targets[0]?.model ?? ex.model;
  const model = (r.body as { model?: unknown }).model;
  return typeof model === "string" ? model : undefined;
}

/**
 * `gen_ai.response.model`: the model the upstream said answered (the winning attempt's, when
 * it named one; a cache hit's stored answer's), else the model the request was routed to.
 */
export function responseModel(ex: Exchange): string | undefined {
  return reportedModel(ex) ?? ex.model;
}

/** The model the winning attempt's answer (or a cache hit's stored one) named, if any. */
export function reportedModel(ex: Exchange): string | undefined {
  for (const a of ex.attempts) if (a.outcome === "ok") return a.response_model;
  return ex.cachedModel;
}

/**
 * Response models as labels. A configured name is itself. An upstream names dated versions
 * the config does not (`gpt-4o-2024-08-06` for `gpt-4o`): for a request routed to a
 * configured model (`routed` is its label, not `other`), the first `cap` such names are kept.
 * Anything else is `routed`: a client's made-up model names never mint a label.
 */
export function createResponseModelLabel(
  cap: number,
): (known: ReadonlySet<string>, reported: string | undefined, routed: string) => string {
  const extra = new Set<string>();
  return (known, reported, routed) => {
    if (reported === undefined) return routed;
    if (known.has(reported)) return reported;
    if (routed === OTHER) return OTHER;
    if (extra.has(reported)) return reported;
    if (extra.size >= cap) return OTHER;
    extra.add(reported);
    return reported;
  };
}

/**
 * `error.type` (OTel semconv): the gateway's error code for a failed request, the stream's
 * outcome for one cut short, or null for a success.
 */
export function errorType(ex: Exchange, status: number, outcome: string): string | null {
  const facts = ex.response;
  const err = facts?.handlerError ?? facts?.error;
  if (status >= 400) return err instanceof GatewayError ? err.code : String(status);
  if (outcome !== "complete") return err instanceof GatewayError ? err.code : outcome;
  return null;
}

/** A coarse class for the status page's error table. */
export function errorClass(status: number, outcome: string): string | null {
  if (status >= 500) return "5xx";
  if (status === 429) return "429";
  if (status >= 400) return "4xx";
  if (outcome !== "complete") return `stream_${outcome}`;
  return null;
}
