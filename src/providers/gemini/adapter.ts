import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { classifyOutcome } from "../../breaker/classify.ts";
import { createUsageMeter, knownUsage, meterChunks } from "../../streaming/mod.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamReply } from "../execute.ts";
import type {
  AdapterDeps,
  ChatCall,
  ChatOutcome,
  CountTokensCall,
  EmbeddingsCall,
  JsonOutcome,
  ProviderAdapter,
  TokenCount,
} from "../types.ts";
import { GEMINI_NATIVE } from "./native.ts";
import { encodingOf, inGroups, spentOn } from "../shared/embeddings.ts";
import {
  batchSpent,
  fromGeminiEmbedResponse,
  mergeEmbedResponses,
  splitEmbedRequest,
  toGeminiEmbedRequest,
} from "./embeddings.ts";
import { fromGeminiError } from "./errors.ts";
import { toGeminiRequest } from "./request.ts";
import { fromGeminiResponse } from "./response.ts";
import { toOpenAIStream } from "./stream.ts";
import { scrubStream } from "../../streaming/scrub.ts";
import { notEventStream, notJsonBody } from "../shared/errors.ts";

/**
 * Adapter for the Gemini API (`generativelanguage.googleapis.com`, `/v1beta`) behind the
 * unified OpenAI-compatible API: chat goes to `models/{model}:generateContent` (or
 * `:streamGenerateContent?alt=sse`), embeddings to `models/{model}:batchEmbedContents`, and
 * the answers come back in OpenAI wire format.
 */

export function createGeminiAdapter(cfg: ProviderConfig, deps: AdapterDeps): ProviderAdapter {
  // Built once per config: the hot path only copies it.
  const baseHeaders = Object.freeze({
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });
  const apiBase = geminiApiBase(cfg.base_url);

  /** POST `body` to `{api base}/{resource}:{method}`, failing with Gemini's error mapped. */
  const post = (
    call: ChatCall | EmbeddingsCall | CountTokensCall,
    resource: string,
    method: string,
    body: unknown,
    accept: string,
  ): Promise<UpstreamReply> => {
    const headers: Record<string, string> = { ...baseHeaders, accept };
    const key = call.apiKey ?? keyFromAuthorization(call.clientAuthorization);
    // The key travels in a header, never as `?key=`: URLs end up in logs.
    if (key !== null) headers["x-goog-api-key"] = key;
    return executeUpstream(deps.fetch, {
      url: `${apiBase}/${resource}:${method}`,
      method: "POST",
      headers,
      body: JSON.stringify(body),
    }, {
      signal: call.signal,
      scrub: deps.scrub,
      timeoutMs: call.timeoutMs,
      onReply: call.onReply,
      trace: call.trace,
      provider: cfg.name,
      toError: (status, text, headers) =>
        fromGeminiError(status, text, headers, cfg.name, deps.redact),
    });
  };

  const readJson = async (reply: UpstreamReply): Promise<unknown> => {
    const text = await reply.text();
    try {
      return JSON.parse(text);
    } catch {
      throw notJsonBody(cfg.name, reply.response.status);
    }
  };

  return {
    name: cfg.name,
    type: cfg.type,
    models: () => cfg.models,
    // RESOURCE_EXHAUSTED is a 429 (a localized rate limit) by the shared rules already.
    classify: classifyOutcome,
    native: GEMINI_NATIVE,
    // Google's SDKs name models as resources (`models/gemini-embedding-001`): priced by id.
    pricedAs: (model) => model.replace(/^models\//, ""),

    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      // Translation errors are the caller's 400s and must surface before any upstream call.
      const resource = toModelResource(model, cfg.name);
      const payload = toGeminiRequest(call.body, cfg.name, model);
      if (call.stream) {
        const reply = await post(
          call,
          resource,
          "streamGenerateContent?alt=sse",
          payload,
          "text/event-stream",
        );
        const res = reply.response;
        reply.settle();
        // Without `alt=sse` Gemini streams one JSON array; anything but SSE is unusable here.
        if (!(res.headers.get("content-type") ?? "").includes("text/event-stream") || !res.body) {
          await res.body?.cancel();
          throw notEventStream(cfg.name, res.status);
        }
        const meter = createUsageMeter();
        return {
          kind: "stream",
          status: res.status,
          format: "chunks",
          // The key this gateway sent, echoed in the answer, is taken out before translation.
          body: toOpenAIStream(scrubStream(deps.scrub, res.body), {
            model,
            includeUsage: call.body.stream_options?.include_usage === true,
            onUsage: meter.report,
            onPartialUsage: meter.report,
            provider: cfg.name,
            redact: deps.redact,
          }).pipeThrough(meterChunks(meter)),
          usage: meter.usage,
        };
      }
      const reply = await post(call, resource, "generateContent", payload, "application/json");
      const completion = fromGeminiResponse(await readJson(reply), model, { provider: cfg.name });
      return {
        kind: "json",
        status: reply.response.status,
        format: "object",
        body: completion as unknown as Record<string, unknown>,
        usage: knownUsage(completion.usage),
      };
    },

    async embeddings(call: EmbeddingsCall, model: string): Promise<JsonOutcome> {
      const resource = toModelResource(model, cfg.name);
      const payload = toGeminiEmbedRequest(call.body, resource, cfg.name);
      const encoding = encodingOf(call.body);
      // Gemini takes at most 100 requests per batch; OpenAI clients send up to 2048 inputs.
      const batches = splitEmbedRequest(payload);
      let status = 200;
      const answers = await inGroups(batches, async (batch) => {
        const reply = await post(call, resource, "batchEmbedContents", batch, "application/json");
        status = reply.response.status;
        return await readJson(reply);
      }, (done) => spentOn(done.map(([batch, answer]) => batchSpent(batch, answer))));
      const { body, usage } = fromGeminiEmbedResponse(
        mergeEmbedResponses(answers),
        model,
        payload.requests.length,
        encoding,
        cfg.name,
      );
      return {
        kind: "json",
        status,
        format: "object",
        body: body as unknown as Record<string, unknown>,
        usage: knownUsage(usage),
      };
    },

    /**
     * Gemini's own count (`models/{model}:countTokens`) over the request as it would be
     * sent, system instruction and tools included (`generateContentRequest`).
     */
    async countTokens(call: CountTokensCall, model: string): Promise<TokenCount> {
      const resource = toModelResource(model, cfg.name);
      const { generationConfig: _settings, ...prompt } = toGeminiRequest(
        { ...call.chat, stream: false },
        cfg.name,
      ) as unknown as Record<string, unknown>;
      const reply = await post(
        call,
        resource,
        "countTokens",
        { generateContentRequest: { model: resource, ...prompt } },
        "application/json",
      );
      const json = await readJson(reply) as { totalTokens?: unknown } | null;
      const total = json?.totalTokens;
      if (typeof total !== "number") {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" answered a token count without "totalTokens"`,
          { provider: cfg.name, upstreamStatus: reply.response.status },
        );
      }
      return { input_tokens: total, estimate: false };
    },
  };
}

/** The API version the adapter speaks when `base_url` is the API root. */
export const GEMINI_API_VERSION = "v1beta";

/**
 * Where Gemini's API lives for a `base_url`: the API root (Butter's convention,
 * `https://generativelanguage.googleapis.com`) gets `/v1beta`; a base_url that already ends in
 * a version segment (`/v1`, `/v1beta`, `/v1alpha`, ...) is used as it is.
 */
export function geminiApiBase(baseUrl: string): string {
  const base = baseUrl.replace(/\/+$/, "");
  return /\/v\d+(?:alpha|beta)?\d*$/.test(base) ? base : `${base}/${GEMINI_API_VERSION}`;
}

/**
 * The model's resource name, which goes into the URL path. Clients may write it bare
 * (`gemini-2.5-flash`) or as Gemini names it (`models/gemini-2.5-flash`,
 * `tunedModels/my-model`). The id is restricted to the characters Gemini model ids use, so
 * a client cannot steer the request to another path (or add a query) on the upstream.
 */
export function toModelResource(model: string, provider: string): string {
  const match = /^(models|tunedModels)\/(.*)$/.exec(model);
  const collection = match?.[1] ?? "models";
  const id = match?.[2] ?? model;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) {
    throw new GatewayError(
      "invalid_request",
      `Model "${model}" is not a valid Gemini model name for provider "${provider}"`,
      { param: "model", provider },
    );
  }
  return `${collection}/${id}`;
}

/**
 * Gemini authenticates with `x-goog-api-key` and must never receive `Authorization`: a
 * Bearer token there is taken for an OAuth token and refused. A forwarded client
 * credential arrives as OpenAI SDKs send it, `Authorization: Bearer <key>`, so its value
 * moves to `x-goog-api-key`.
 */
function keyFromAuthorization(authorization: string | null): string | null {
  if (authorization === null) return null;
  const key = authorization.replace(/^\s*Bearer\s+/i, "").trim();
  return key === "" ? null : key;
}
