import type { GatewayError } from "../errors.ts";
import type { ProviderConfig } from "../config/mod.ts";
import type { OutcomeClass, UpstreamOutcome } from "../breaker/classify.ts";
import type {
  OpenAIChatChunk,
  OpenAIChatRequest,
  OpenAIEmbeddingsRequest,
  OpenAIUsage,
} from "../schema/openai.ts";
import type { Redactor } from "../telemetry/mod.ts";
import type { SecretScrub } from "../streaming/scrub.ts";
import type { UpstreamTrace } from "./execute.ts";
import type { StreamFailures } from "../streaming/usage_sniff.ts";
import type { NativeAuth } from "./shared/native_auth.ts";

/** Token usage in the canonical (OpenAI) shape. */
export type Usage = OpenAIUsage;

/** One canonical stream event: an OpenAI `chat.completion.chunk` object. */
export type ChatChunk = OpenAIChatChunk;

/** Upstream wire formats an outcome can carry untouched (the same-schema fast path). */
export type JsonWire = "openai_json" | "anthropic_json" | "responses_json";
export type SseWire = "openai_sse" | "anthropic_sse" | "responses_sse";

/**
 * A successful answer to one attempt, as data. Either canonical (an OpenAI-shaped object or
 * a stream of typed chunks), or the upstream's own bytes tagged with their wire format so a
 * same-schema answer is relayed without decoding (the edge encoder and `decodeWire` know
 * both). Usage is data too: settled when the answer is complete (for a stream, when it
 * ends or is cancelled), null when the upstream reported none.
 */
export type ChatOutcome = JsonOutcome | StreamOutcome;

export type JsonOutcome =
  | {
    readonly kind: "json";
    readonly status: number;
    readonly format: "object";
    /** A `chat.completion` or an embeddings `list`, OpenAI-shaped. */
    readonly body: Record<string, unknown>;
    readonly usage: Promise<Usage | null>;
  }
  | {
    readonly kind: "json";
    readonly status: number;
    readonly format: JsonWire;
    readonly body: Uint8Array<ArrayBuffer>;
    readonly usage: Promise<Usage | null>;
  };

export type StreamOutcome =
  | {
    readonly kind: "stream";
    readonly status: number;
    readonly format: "chunks";
    readonly body: ReadableStream<ChatChunk>;
    readonly usage: Promise<Usage | null>;
  }
  | {
    readonly kind: "stream";
    readonly status: number;
    readonly format: SseWire;
    /** The upstream's SSE bytes, `[DONE]` or `message_stop` included. */
    readonly body: ReadableStream<Uint8Array>;
    readonly usage: Promise<Usage | null>;
    /**
     * The error an event's `data` reports (the upstream failed in place of answering), else
     * null: before anything committed the stream, it fails the attempt (and so fails over).
     */
    readonly failure?: (data: string) => GatewayError | null;
    /**
     * A relayed Responses stream: the in-format event that ends it when the gateway breaks it
     * (its own `response.failed`, numbered on from the upstream's events).
     */
    readonly failedEvent?: (error: GatewayError) => Uint8Array;
  };

/** Native passthrough: the upstream reply itself, relayed untouched. */
export interface RawOutcome {
  readonly kind: "raw";
  readonly status: number;
  readonly response: Response;
  /** Stops the attempt's timer, which still covers a body not yet read (`UpstreamReply`). */
  readonly settle?: () => void;
}

/** What every call shares: its signal, timeout and credentials. */
export interface CallBasics {
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
  /** Given the reply's headers as soon as they arrive (any status), for the request id. */
  readonly onReply?: ((headers: Headers) => void) | undefined;
  /** The attempt's W3C trace context, for `executeUpstream` to send (none when untraced). */
  readonly trace?: UpstreamTrace | undefined;
}

/** Everything an adapter needs for one chat attempt. */
export interface ChatCall extends CallBasics {
  /** The client's request, `x-gateway` removed (the adapter sets `model` to the upstream one). */
  readonly body: OpenAIChatRequest;
  readonly stream: boolean;
}

/** One embeddings attempt: the OpenAI request body. */
export interface EmbeddingsCall extends CallBasics {
  readonly body: OpenAIEmbeddingsRequest;
}

/**
 * Same-schema passthrough for `POST /v1/messages`: an Anthropic Messages body sent as is
 * (model patched) to a provider that speaks it, answered in Anthropic wire format.
 */
export interface MessagesCall extends CallBasics {
  readonly body: Record<string, unknown>;
  readonly stream: boolean;
  /** The client's `anthropic-version` / `anthropic-beta`, passed through. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Same-schema passthrough for `POST /v1/responses`: a Responses API body sent as is (model
 * patched) to a provider that speaks it, answered in its wire format (`responses_*`).
 */
export interface ResponsesCall extends CallBasics {
  readonly body: Record<string, unknown>;
  readonly stream: boolean;
  /**
   * Told each id of what the provider created and keeps (the response, its output items):
   * the gateway records whose they are.
   */
  readonly onId?: (id: string) => void;
}

/**
 * A token count of a request's input. `messages`: the Anthropic Messages body when the
 * request came in that way (an Anthropic provider counts it as is); `chat`: the canonical
 * form every other provider counts.
 */
export interface CountTokensCall extends CallBasics {
  readonly chat: OpenAIChatRequest;
  /** The client's count_tokens body (`/v1/messages/count_tokens`), `x-gateway` removed. */
  readonly messages: Record<string, unknown> | null;
  /** With `messages`: the client's `anthropic-version` / `anthropic-beta`, passed through. */
  readonly headers: Readonly<Record<string, string>>;
  /** The Responses body (`/v1/responses/input_tokens`), for providers that speak it natively. */
  readonly responses: Record<string, unknown> | null;
}

/** `estimate`: counted locally with a tokenizer (the provider has no counting endpoint). */
export interface TokenCount {
  readonly input_tokens: number;
  readonly estimate: boolean;
}

/**
 * What a provider knows about its own native API, for the passthrough routes: how its
 * clients send credentials, and where usage sits in its answers.
 */
export interface NativeApi {
  readonly auth: NativeAuth;
  /**
   * A path segment of this API that may carry an encoded slash once decoded (a resource name,
   * e.g. Bedrock's inference-profile ARN); every other encoded slash is refused.
   */
  readonly opaqueSegment?: RegExp;
  /** Token counts from one JSON object of an answer (a body, an SSE event); null if none. */
  usage(value: unknown): Partial<Usage> | null;
  /**
   * For a body framing other than JSON and SSE (AWS event-stream): a tap that forwards
   * the bytes untouched, hands each decoded JSON payload to `onObject` and the answer text
   * it carries to `onContent` (characters, for the estimate of a stream cut short), and a
   * failure the framing carries (an exception frame) to `failures`. Null otherwise.
   */
  frames?(
    contentType: string,
    onObject: (value: unknown) => void,
    onEnd: (how: "complete" | "cut") => void,
    onContent: (chars: number) => void,
    failures?: StreamFailures,
  ): TransformStream<Uint8Array, Uint8Array> | null;
  /**
   * The model a request is for when this API names it in its own terms (Azure: the
   * deployment in the path, or the v1 API's body `model`), as the config names it: what
   * allowlists, pricing and the breaker key go by. `named` is the generic reading (a
   * `/models/{id}` path, else the body's `model`); absent: that reading as it is.
   */
  modelOf?(rest: string, named: string | undefined, provider: ProviderConfig): string | undefined;
  /** Usage carried in reply headers (Bedrock InvokeModel), if any. */
  headerUsage?(headers: Headers): Usage | null;
  /**
   * A request path whose answer streams in a framing that does not say so (Gemini's
   * `:streamGenerateContent` without `alt=sse`: a JSON array, sent as it is generated).
   */
  streams?(path: string): boolean;
  /**
   * A request path whose answer never counts its input (Gemini's embeddings): it is billed
   * on the request's size (~4 bytes a token), marked estimated, unless the answer counts.
   */
  uncountedInput?(path: string): boolean;
  /**
   * Characters of answer text in one SSE event's data, for APIs whose streams may carry no
   * counts (OpenAI's, unless asked for `include_usage`): the output is then estimated.
   */
  contentChars?(data: string): number;
  /**
   * Whether one SSE event's data ends this API's stream (its last event, or a failure it
   * reported): a passthrough SSE answer that closes without one was cut short.
   */
  streamDone?(data: string): boolean;
  /**
   * The failure an SSE event that ends the stream reports (Anthropic's `error` event, a
   * Responses `response.failed`), else null: relayed as sent, fed to the breaker, logged.
   */
  streamFailure?(data: string, provider: string): GatewayError | null;
  /**
   * Absolute URLs of this API that its answers hand the client to call next (a batch's
   * `results_url`, a resumable upload's `X-Goog-Upload-URL`): pointed back at the sidecar's
   * route, so that call comes through it too (its app key stays here, a configured key goes).
   */
  readonly links?: {
    readonly headers?: readonly string[];
    /** Fields of a JSON answer (read whole) whose string value is such a URL. */
    readonly jsonFields?: readonly string[];
  };
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
  /** OpenAI-shape embeddings (a JSON outcome); absent when the provider has none. */
  embeddings?(call: EmbeddingsCall, model: string): Promise<JsonOutcome>;
  /** Anthropic Messages passthrough (see MessagesCall); only Anthropic-format providers. */
  messages?(call: MessagesCall, model: string): Promise<ChatOutcome>;
  /** Responses API passthrough (see ResponsesCall); providers configured `responses: native`. */
  responses?(call: ResponsesCall, model: string): Promise<ChatOutcome>;
  /**
   * A response the provider keeps (`GET`/`DELETE {base_url}/responses/{id}`), its bytes as
   * answered; the providers that speak the Responses API natively. A non-2xx is thrown.
   */
  storedResponse?(call: StoredResponseCall): Promise<StoredResponseReply>;
  /** Count the input tokens of a request (the provider's endpoint, or a local tokenizer). */
  countTokens?(call: CountTokensCall, model: string): Promise<TokenCount>;
  /**
   * The breaker's reading of one upstream outcome (llm-proxy's classes), by this provider's
   * own rules; the generic status rules when absent.
   */
  classify?(outcome: UpstreamOutcome): OutcomeClass;
  /** The provider's native API, for the passthrough routes. */
  readonly native?: NativeApi;
  /**
   * The reply header carrying the provider's own id of a request (what its SDKs report and
   * its support asks for); absent when it sends none. Logged as `upstream_request_id`.
   */
  readonly requestIdHeader?: string;
  /**
   * For providers that authenticate with something other than API keys (Bedrock signing
   * with the daemon's AWS credentials): why calls cannot be authenticated now, or null when
   * they can. Shown on `/health`; API-key providers are judged by their configured keys.
   */
  credentialProblem?(): Promise<string | null>;
  /** What `/health` shows of this provider beyond the common fields (llm-proxy's per type). */
  readonly healthFields?: Readonly<Record<string, unknown>>;
  /**
   * The model id `model` is priced as, when this provider has other names for the same model
   * (Bedrock: a model's or an inference profile's ARN); `model` itself when absent.
   */
  pricedAs?(model: string): string;
}

/** A call on a response a provider keeps. */
export interface StoredResponseCall {
  readonly method: "GET" | "DELETE" | "POST";
  readonly id: string;
  /** After the id: `""`, `/input_items` (GET) or `/cancel` (POST). */
  readonly action: StoredAction;
  /** The client's query (`?include[]=...`, `""` for none), sent on as it came. */
  readonly query: string;
  readonly apiKey: string | null;
  readonly clientAuthorization: string | null;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
}

export type StoredAction = "" | "/input_items" | "/cancel";

export interface StoredResponseReply {
  readonly status: number;
  readonly body: Uint8Array<ArrayBuffer>;
}

export interface AdapterDeps {
  readonly fetch: typeof fetch;
  readonly redact: Redactor;
  /** Relayed stream bytes pass through it (an upstream echoing the key in an event). */
  readonly scrub?: SecretScrub | null;
  readonly random: () => number;
}
