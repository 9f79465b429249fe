import type { ProviderConfig } from "../config/mod.ts";
import type { OpenAIChatRequest, OpenAIEmbeddingsRequest, OpenAIUsage } from "../schema/openai.ts";
import type { Redactor } from "../telemetry/mod.ts";

/** Everything an adapter needs for one chat attempt. */
export interface ChatCall {
  /** The client's request, `x-gateway` removed, `model` already set to the upstream model. */
  readonly body: OpenAIChatRequest;
  readonly stream: boolean;
  /** Aborts when the client goes away; aborting cancels the upstream request. */
  readonly signal: AbortSignal;
  /** Per-attempt timeout: until response headers, and for non-streams the whole body. */
  readonly timeoutMs: number;
  /** The configured key chosen for this attempt; null when the provider has none. */
  readonly apiKey: string | null;
  /**
   * The client's `Authorization`, set only when the provider forwards client credentials
   * (`credential_mode: passthrough`, or no keys configured). Never a `pf_` key.
   */
  readonly clientAuthorization: string | null;
  /** Receives token usage when the upstream reports it (for streams, at the end). */
  readonly onUsage: (usage: OpenAIUsage) => void;
}

/** A successful upstream answer, already in OpenAI wire format. */
export type ChatOutcome =
  | {
    readonly kind: "json";
    readonly status: number;
    readonly body: string | Uint8Array<ArrayBuffer>;
  }
  | {
    readonly kind: "stream";
    readonly status: number;
    /** OpenAI SSE bytes, ending with `data: [DONE]`. */
    readonly body: ReadableStream<Uint8Array>;
  };

/** Native passthrough: the upstream reply itself, relayed untouched. */
export interface RawOutcome {
  readonly kind: "raw";
  readonly status: number;
  readonly response: Response;
}

/** One embeddings attempt: the OpenAI request body, `model` already set to the upstream one. */
export interface EmbeddingsCall {
  readonly body: OpenAIEmbeddingsRequest;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
  readonly onUsage: (usage: OpenAIUsage) => void;
}

/**
 * Same-schema passthrough for `POST /v1/messages`: an Anthropic Messages body sent as is
 * (model patched) to a provider that speaks it, answered in Anthropic wire format.
 */
export interface MessagesCall {
  readonly body: Record<string, unknown>;
  readonly stream: boolean;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
  /** The client's `anthropic-version` / `anthropic-beta`, passed through. */
  readonly headers: Readonly<Record<string, string>>;
  readonly onUsage: (usage: OpenAIUsage) => void;
}

export interface ProviderAdapter {
  readonly name: string;
  readonly type: ProviderConfig["type"];
  /** Models this provider advertises on `/v1/models` (without the `provider/` prefix). */
  models(): readonly string[];
  /**
   * Ask the provider which models it serves (for `/v1/models` when none are configured);
   * absent when the provider has no such API or no key to ask with.
   */
  discoverModels?(signal: AbortSignal): Promise<readonly string[]>;
  /** Run one chat completion attempt. Failures are thrown as GatewayError. */
  chat(call: ChatCall, model: string): Promise<ChatOutcome>;
  /** OpenAI-shape embeddings (JSON outcome); absent when the provider has none. */
  embeddings?(call: EmbeddingsCall, model: string): Promise<ChatOutcome>;
  /** Anthropic Messages passthrough (see MessagesCall); only Anthropic-format providers. */
  messages?(call: MessagesCall, model: string): Promise<ChatOutcome>;
  /**
   * For providers that authenticate with something other than API keys (Bedrock signing
   * with the daemon's AWS credentials): why calls cannot be authenticated now, or null when
   * they can. Shown on `/health`; API-key providers are judged by their configured keys.
   */
  credentialProblem?(): Promise<string | null>;
}

export interface AdapterDeps {
  readonly fetch: typeof fetch;
  readonly redact: Redactor;
  readonly random: () => number;
}
