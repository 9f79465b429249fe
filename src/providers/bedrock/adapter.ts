import type { ProviderConfig } from "../../config/mod.ts";
import { GatewayError } from "../../errors.ts";
import { createUsageMeter, knownUsage, meterChunks } from "../../streaming/mod.ts";
import { executeUpstream, lowerCaseKeys, type UpstreamReply } from "../execute.ts";
import type {
  AdapterDeps,
  CallBasics,
  ChatCall,
  ChatOutcome,
  CountTokensCall,
  EmbeddingsCall,
  JsonOutcome,
  ProviderAdapter,
  TokenCount,
} from "../types.ts";
import {
  type AwsCredentialProvider,
  type AwsCredentials,
  createAwsCredentialProvider,
} from "./credentials.ts";
import { classifyBedrock } from "./classify.ts";
import { CREDENTIAL_EXCEPTIONS, fromBedrockError } from "./errors.ts";
import { bedrockBaseModelId, bedrockModelId } from "./model_id.ts";
import { BEDROCK_NATIVE } from "./native.ts";
import { toConverseRequest } from "./request.ts";
import { fromConverseResponse } from "./response.ts";
import { bedrockTarget, signBedrockRequest } from "./sign.ts";
import { toOpenAIStream } from "./stream.ts";
import { planEmbeddings, toEmbeddingList } from "./embeddings.ts";
import { inGroups, spentOn } from "../shared/embeddings.ts";
import { notEventStream, notJsonBody } from "../shared/errors.ts";

const EVENT_STREAM = "application/vnd.amazon.eventstream";

/**
 * Bedrock signing mode (`providers.<name>.sign: true`): the unified OpenAI-compatible API
 * served by Bedrock Converse. The OpenAI request is translated to
 * `POST {base_url}/model/{modelId}/converse` (or `/converse-stream`), signed by Pilotfish
 * with SigV4 (service `bedrock`, the provider's region) using the daemon's own AWS
 * credentials, and the answer (JSON, or event-stream frames) comes back in OpenAI wire
 * format. Client credentials are never used here: the `/bedrock/*` passthrough is the
 * route for apps that sign for themselves.
 */
export function createBedrockAdapter(
  cfg: ProviderConfig,
  deps: AdapterDeps,
  credentials: AwsCredentialProvider = createAwsCredentialProvider(cfg.name),
): ProviderAdapter {
  const region = cfg.region ?? "us-west-2";
  // Built once per config: the hot path only copies it.
  const baseHeaders: Readonly<Record<string, string>> = Object.freeze({
    ...lowerCaseKeys(cfg.headers),
    "content-type": "application/json",
  });

  return {
    name: cfg.name,
    type: cfg.type,
    // AWS's request id.
    requestIdHeader: "x-amzn-requestid",
    models: () => cfg.models,
    classify: classifyBedrock,
    native: BEDROCK_NATIVE,
    healthFields: bedrockHealthFields(cfg),
    pricedAs: bedrockModelId,

    // The same resolution chat uses (and its cache), so /health says what a call would meet.
    credentialProblem: () =>
      credentials.get().then(() => null, (err: unknown) => (err as Error).message),

    async chat(call: ChatCall, model: string): Promise<ChatOutcome> {
      // Translation errors are the caller's 400s and must surface before any upstream call.
      const modelPath = toModelPath(model, cfg.name);
      const payload = JSON.stringify(toConverseRequest(call.body, cfg.name, model));
      const { reply, redact } = await signedPost(
        call,
        `${modelPath}/${call.stream ? "converse-stream" : "converse"}`,
        payload,
        call.stream ? EVENT_STREAM : "application/json",
      );
      const res = reply.response;
      const id = `chatcmpl-${res.headers.get("x-amzn-requestid") ?? crypto.randomUUID()}`;
      if (call.stream) {
        const meter = createUsageMeter();
        return {
          kind: "stream",
          status: res.status,
          format: "chunks",
          body: toOpenAIStream(await eventStream(reply), {
            model,
            id,
            includeUsage: call.body.stream_options?.include_usage === true,
            onUsage: meter.report,
            provider: cfg.name,
            redact,
          }).pipeThrough(meterChunks(meter)),
          usage: meter.usage,
        };
      }
      const completion = fromConverseResponse(await readJson(reply), {
        model,
        id: id.slice("chatcmpl-".length),
        provider: cfg.name,
      });
      return {
        kind: "json",
        status: res.status,
        format: "object",
        body: completion as unknown as Record<string, unknown>,
        usage: knownUsage(completion.usage),
      };
    },

    /**
     * `POST /model/{modelId}/invoke` in the model family's own body (embeddings.ts), at most
     * four calls at a time (`inGroups`), the answers in input order.
     */
    async embeddings(call: EmbeddingsCall, model: string): Promise<JsonOutcome> {
      const modelPath = toModelPath(model, cfg.name);
      const plan = planEmbeddings(call.body, model, cfg.name);
      let status = 200;
      const answers = await inGroups(
        plan.calls,
        async (one) => {
          const { reply } = await signedPost(
            call,
            `${modelPath}/invoke`,
            JSON.stringify(one.body),
            "application/json",
          );
          status = reply.response.status;
          const header = reply.response.headers.get("x-amzn-bedrock-input-token-count");
          return plan.read(await readJson(reply), header, one.inputs);
        },
        (done) =>
          spentOn(done.map(([one, answer]) => ({ tokens: answer.tokens, chars: one.chars }))),
      );
      const { body, usage } = toEmbeddingList(answers, model, plan.encoding);
      return {
        kind: "json",
        status,
        format: "object",
        body: body as unknown as Record<string, unknown>,
        usage: knownUsage(usage),
      };
    },

    /**
     * Bedrock's own count (`POST /model/{modelId}/count-tokens`) over the Converse form of
     * the request: its messages, system prompt and tool configuration. CountTokens takes the
     * base model id only: an inference profile (`us.anthropic....`, or its ARN) gets 400 "The
     * provided model doesn't support counting tokens", so the profile's model is counted.
     */
    async countTokens(call: CountTokensCall, model: string): Promise<TokenCount> {
      const modelPath = toModelPath(bedrockBaseModelId(model), cfg.name);
      // Thinking settings shape the answer, not the prompt: a count never refuses over them.
      const converse = toConverseRequest(
        { ...call.chat, stream: false, reasoning_effort: undefined },
        cfg.name,
        model,
      ) as unknown as Record<string, unknown>;
      const input: Record<string, unknown> = {};
      for (const field of ["messages", "system", "toolConfig"]) {
        if (converse[field] !== undefined) input[field] = converse[field];
      }
      const payload = JSON.stringify({ input: { converse: input } });
      const { reply } = await signedPost(
        call,
        `${modelPath}/count-tokens`,
        payload,
        "application/json",
      );
      const json = await readJson(reply) as { inputTokens?: unknown } | null;
      const tokens = json?.inputTokens;
      if (typeof tokens !== "number") {
        throw new GatewayError(
          "upstream_error",
          `Provider "${cfg.name}" answered a token count without "inputTokens"`,
          { provider: cfg.name, upstreamStatus: reply.response.status },
        );
      }
      return { input_tokens: tokens, estimate: false };
    },
  };

  /** One signed POST to `{base}{path}`, Bedrock's errors mapped (credentials refreshed). */
  async function signedPost(
    call: CallBasics,
    path: string,
    payload: string,
    accept: string,
  ): Promise<{ reply: UpstreamReply; redact: (text: string) => string }> {
    const creds = await credentials.get();
    const target = bedrockTarget(cfg.base_url, region, path);
    const headers = await signBedrockRequest({
      region,
      credentials: creds,
      target,
      method: "POST",
      headers: { ...baseHeaders, accept },
      body: payload,
    });
    const redact = redactorFor(creds);
    const reply = await executeUpstream(deps.fetch, {
      url: target.url,
      method: "POST",
      headers,
      body: payload,
    }, {
      signal: call.signal,
      scrub: deps.scrub,
      timeoutMs: call.timeoutMs,
      onReply: call.onReply,
      trace: call.trace,
      provider: cfg.name,
      toError: (status, text, replyHeaders) => {
        const err = fromBedrockError(status, text, replyHeaders, cfg.name, redact);
        if (CREDENTIAL_EXCEPTIONS.has(err.info.upstreamCode ?? "")) credentials.invalidate();
        return err;
      },
    });
    return { reply, redact };
  }

  /** The reply's body as an event stream; refused when Bedrock answered otherwise. */
  async function eventStream(reply: UpstreamReply): Promise<ReadableStream<Uint8Array>> {
    const res = reply.response;
    reply.settle();
    if (!(res.headers.get("content-type") ?? "").includes(EVENT_STREAM) || !res.body) {
      await res.body?.cancel();
      throw notEventStream(cfg.name, res.status);
    }
    return res.body;
  }

  async function readJson(reply: UpstreamReply): Promise<unknown> {
    const text = await reply.text();
    try {
      return JSON.parse(text);
    } catch {
      throw notJsonBody(cfg.name, reply.response.status);
    }
  }

  /**
   * Upstream messages may quote what was signed (the security token is a signed header):
   * the daemon's own credentials are removed along with everything the shared redactor
   * knows.
   */
  function redactorFor(creds: AwsCredentials): (text: string) => string {
    const secrets = [creds.sessionToken, creds.secretAccessKey, creds.accessKeyId]
      .filter((s): s is string => s !== undefined && s.length >= 4);
    return (text) => deps.redact(secrets.reduce((t, s) => t.replaceAll(s, "[REDACTED]"), text));
  }
}

/**
 * `/model/{modelId}` with the id percent-encoded once (`:` -> `%3A`, an ARN's `/` -> `%2F`),
 * as the AWS SDKs send it and sign it. Ids are model ids, inference-profile ids or ARNs;
 * anything else (blank, whitespace, `.`/`..`, which a URL parser would resolve away) is
 * refused before any upstream call.
 */
export function toModelPath(model: string, provider: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._:/+@-]{0,2047}$/.test(model)) {
    throw new GatewayError(
      "invalid_request",
      `Model "${model}" is not a valid Bedrock model id for provider "${provider}"`,
      { param: "model", provider },
    );
  }
  return `/model/${encodeURIComponent(model)}`;
}

/** llm-proxy's Bedrock `/health` line: the region, and who signs the calls. */
export function bedrockHealthFields(cfg: ProviderConfig): Record<string, unknown> {
  return {
    region: cfg.region ?? "us-west-2",
    auth: cfg.sign === true ? "gateway_sigv4" : "client_sigv4_passthrough",
  };
}
