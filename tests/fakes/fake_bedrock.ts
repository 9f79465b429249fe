/**
 * A local Bedrock Runtime that checks SigV4 like AWS does: it rebuilds the request as the
 * client signed it (the real regional host, the path as received) and verifies the
 * signature with the test credentials; a mismatch is AWS's 403 InvalidSignatureException.
 * Converse answers JSON, ConverseStream answers real `application/vnd.amazon.eventstream`
 * frames (via @smithy/eventstream-codec), and errors look like AWS's (x-amzn-errortype).
 */
import { EventStreamCodec } from "@smithy/eventstream-codec";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";
import type { RecordedRequest } from "./fake_upstream.ts";

export const TEST_CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLETEST00001",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  sessionToken: "FQoGZXIvYXdzEXAMPLESESSIONTOKEN",
};

export interface BedrockRecorded extends RecordedRequest {
  /** The raw path as received (percent-encoding intact). */
  readonly rawPath: string;
  readonly signatureValid: boolean;
}

/**
 * One event-stream message. `messageType: "exception"` makes it an exception frame
 * (`:exception-type` = `type`, e.g. `throttlingException`), as Bedrock sends mid-stream.
 */
export type BedrockEvent = {
  type: string;
  payload: Record<string, unknown>;
  messageType?: "event" | "exception";
};

export interface BedrockScript {
  /** Converse JSON answer. */
  json?: Record<string, unknown>;
  /** ConverseStream / InvokeWithResponseStream events. */
  events?: BedrockEvent[];
  /** After the events, keep the stream open (until the reader goes away). */
  holdOpen?: boolean;
  /** AWS error: status + exception name + message. */
  error?: { status: number; type: string; message: string };
}

export interface FakeBedrock {
  readonly url: string;
  readonly region: string;
  readonly requests: BedrockRecorded[];
  script(next: BedrockScript): void;
  close(): Promise<void>;
}

export const CONVERSE_TEXT = {
  output: { message: { role: "assistant", content: [{ text: "Hello from Bedrock" }] } },
  stopReason: "end_turn",
  usage: { inputTokens: 11, outputTokens: 4, totalTokens: 15 },
  metrics: { latencyMs: 120 },
};

export const STREAM_TEXT: BedrockEvent[] = [
  { type: "messageStart", payload: { role: "assistant" } },
  { type: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Hello" } } },
  {
    type: "contentBlockDelta",
    payload: { contentBlockIndex: 0, delta: { text: " from Bedrock" } },
  },
  { type: "contentBlockStop", payload: { contentBlockIndex: 0 } },
  { type: "messageStop", payload: { stopReason: "end_turn" } },
  {
    type: "metadata",
    payload: {
      usage: { inputTokens: 21, outputTokens: 9, totalTokens: 30 },
      metrics: { latencyMs: 300 },
    },
  },
];

/** Converse answering with a tool call (signing-mode tests). */
export const CONVERSE_TOOL_USE = {
  output: {
    message: {
      role: "assistant",
      content: [
        { text: "Let me check." },
        {
          toolUse: {
            toolUseId: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            name: "get_weather",
            input: { location: "Paris", unit: "celsius" },
          },
        },
      ],
    },
  },
  stopReason: "tool_use",
  usage: { inputTokens: 310, outputTokens: 52, totalTokens: 362 },
  metrics: { latencyMs: 640 },
};

/** ConverseStream of a tool call whose input JSON arrives in three pieces. */
export const STREAM_TOOL_USE: BedrockEvent[] = [
  { type: "messageStart", payload: { role: "assistant" } },
  { type: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Checking." } } },
  { type: "contentBlockStop", payload: { contentBlockIndex: 0 } },
  {
    type: "contentBlockStart",
    payload: {
      contentBlockIndex: 1,
      start: { toolUse: { toolUseId: "tooluse_stream01", name: "get_weather" } },
    },
  },
  {
    type: "contentBlockDelta",
    payload: { contentBlockIndex: 1, delta: { toolUse: { input: '{"locat' } } },
  },
  {
    type: "contentBlockDelta",
    payload: { contentBlockIndex: 1, delta: { toolUse: { input: 'ion": "Par' } } },
  },
  {
    type: "contentBlockDelta",
    payload: { contentBlockIndex: 1, delta: { toolUse: { input: 'is"}' } } },
  },
  { type: "contentBlockStop", payload: { contentBlockIndex: 1 } },
  { type: "messageStop", payload: { stopReason: "tool_use" } },
  {
    type: "metadata",
    payload: {
      usage: { inputTokens: 300, outputTokens: 40, totalTokens: 340 },
      metrics: { latencyMs: 500 },
    },
  },
];

/** A stream throttled after its first token: an exception frame, then the end. */
export const STREAM_THROTTLED_MIDWAY: BedrockEvent[] = [
  { type: "messageStart", payload: { role: "assistant" } },
  { type: "contentBlockDelta", payload: { contentBlockIndex: 0, delta: { text: "Hel" } } },
  {
    type: "throttlingException",
    messageType: "exception",
    payload: { message: "Too many tokens, please wait before trying again." },
  },
];

const codec = new EventStreamCodec(toUtf8, fromUtf8);
const Sha256 = Hash.bind(null, "sha256");

/** One AWS event-stream frame, as Bedrock sends each event. */
export function eventFrame(event: BedrockEvent): Uint8Array {
  const exception = event.messageType === "exception";
  return codec.encode({
    headers: {
      [exception ? ":exception-type" : ":event-type"]: { type: "string", value: event.type },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: exception ? "exception" : "event" },
    },
    body: fromUtf8(JSON.stringify(event.payload)),
  });
}

async function verify(
  req: Request,
  body: Uint8Array,
  rawPath: string,
  region: string,
): Promise<boolean> {
  const auth = req.headers.get("authorization") ?? "";
  const signed = /SignedHeaders=([^,]+)/.exec(auth)?.[1]?.split(";") ?? [];
  const amzDate = req.headers.get("x-amz-date");
  if (!amzDate || signed.length === 0) return false;
  // Like AWS: a declared payload hash must be the body's (the signer trusts the header).
  const declaredHash = req.headers.get("x-amz-content-sha256");
  if (declaredHash && declaredHash !== "UNSIGNED-PAYLOAD") {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body.slice()));
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== declaredHash) return false;
  }
  const host = `bedrock-runtime.${region}.amazonaws.com`;
  const headers: Record<string, string> = {};
  for (const name of signed) headers[name] = name === "host" ? host : req.headers.get(name) ?? "";
  const url = new URL(req.url);
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const request = new HttpRequest({
    method: req.method,
    protocol: "https:",
    hostname: host,
    path: rawPath,
    query,
    headers,
    body,
  });
  const signer = new SignatureV4({
    service: "bedrock",
    region,
    credentials: TEST_CREDENTIALS,
    sha256: Sha256,
    // The signer would add (and sign) x-amz-content-sha256; botocore neither sends nor
    // signs it, so only a client that sent one gets it back in the canonical request.
    applyChecksum: declaredHash !== null,
  });
  const date = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${
      amzDate.slice(11, 13)
    }:${amzDate.slice(13, 15)}Z`,
  );
  const again = await signer.sign(request, { signingDate: date, signableHeaders: new Set(signed) });
  return again.headers["authorization"] === auth;
}

/** The fakes' token count: one per 10 bytes of the request body (deterministic, non-zero). */
export function fakeCount(body: Uint8Array | string): number {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body).length : body.length;
  return Math.max(1, Math.ceil(bytes / 10));
}

export function startFakeBedrock(region = "us-west-2"): FakeBedrock {
  let current: BedrockScript = { json: CONVERSE_TEXT, events: STREAM_TEXT };
  const requests: BedrockRecorded[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    // The raw request target: Deno keeps the path as sent (percent-encoding intact).
    const rawPath = new URL(req.url).pathname;
    const signatureValid = await verify(req, body, rawPath, region);
    requests.push({
      method: req.method,
      path: decodeURIComponent(rawPath),
      rawPath,
      headers: req.headers,
      body: new TextDecoder().decode(body),
      signatureValid,
    });
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(value), {
        status,
        headers: {
          "content-type": "application/json",
          "x-amzn-requestid": crypto.randomUUID(),
          ...headers,
        },
      });
    if (!signatureValid) {
      return json(403, {
        message: "The request signature we calculated does not match the signature you provided.",
      }, {
        "x-amzn-errortype":
          "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
      });
    }
    const s = current;
    if (s.error) {
      return json(s.error.status, { message: s.error.message }, {
        "x-amzn-errortype":
          `${s.error.type}:http://internal.amazon.com/coral/com.amazonaws.bedrock/`,
      });
    }
    // CountTokens: a count that depends on what was sent, so tests see the prompt arrived.
    if (rawPath.endsWith("/count-tokens")) return json(200, { inputTokens: fakeCount(body) });
    // Embeddings (InvokeModel): a vector per text that says which text it was.
    if (/embed[^/]*\/invoke$/.test(rawPath)) {
      const sent = JSON.parse(new TextDecoder().decode(body)) as Record<string, unknown>;
      const vector = (text: string) => [text.length, text.charCodeAt(0) || 0, 0.5];
      // One call of a fan-out failing: the text `!fail` is refused.
      if (sent.inputText === "!fail") {
        return json(400, { message: "Malformed input request" }, {
          "x-amzn-errortype":
            "ValidationException:http://internal.amazon.com/coral/com.amazonaws.bedrock/",
        });
      }
      if (typeof sent.inputText === "string") {
        return json(200, {
          embedding: vector(sent.inputText),
          inputTextTokenCount: fakeCount(sent.inputText),
          embeddingsByType: { float: vector(sent.inputText) },
        });
      }
      const texts = (sent.texts ?? []) as string[];
      return json(200, {
        id: crypto.randomUUID(),
        response_type: "embeddings_floats",
        texts,
        embeddings: texts.map(vector),
      }, { "x-amzn-bedrock-input-token-count": String(fakeCount(texts.join(" "))) });
    }
    if (/\/(converse-stream|invoke-with-response-stream)$/.test(rawPath)) {
      const events = s.events ?? STREAM_TEXT;
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            if (i >= events.length) {
              // Held open: a pull that never settles (the reader's cancel ends it).
              return s.holdOpen ? new Promise<void>(() => {}) : controller.close();
            }
            controller.enqueue(eventFrame(events[i++]!));
          },
        }),
        {
          headers: {
            "content-type": "application/vnd.amazon.eventstream",
            "x-amzn-requestid": crypto.randomUUID(),
          },
        },
      );
    }
    return json(200, s.json ?? CONVERSE_TEXT);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    region,
    requests,
    script(next) {
      current = next;
    },
    close: () => server.shutdown(),
  };
}
