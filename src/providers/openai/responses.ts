/**
 * The Responses API spoken natively (`responses: native`): where usage sits in its answers.
 * A JSON response carries `usage` at the top level; a stream carries it on its terminal
 * `response.completed` / `response.incomplete` event, inside `response`.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import type { Usage } from "../types.ts";
import {
  sseEventType,
  SseTail,
  sseTap,
  type SyncTransformer,
  type UsageMeter,
} from "../../streaming/mod.ts";
import { dataHasContent } from "../../streaming/gate.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** Responses usage (`input_tokens`, `output_tokens`, details) -> canonical usage. */
export function fromResponsesUsage(usage: unknown): Usage | null {
  if (!isObject(usage) || typeof usage.input_tokens !== "number") return null;
  const input = n(usage.input_tokens);
  const output = n(usage.output_tokens);
  const inDetails = isObject(usage.input_tokens_details) ? usage.input_tokens_details : {};
  const outDetails = isObject(usage.output_tokens_details) ? usage.output_tokens_details : {};
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: n(usage.total_tokens) || input + output,
    prompt_tokens_details: { cached_tokens: n(inDetails.cached_tokens) },
    completion_tokens_details: { reasoning_tokens: n(outDetails.reasoning_tokens) },
  };
}

/**
 * Usage and ids of a JSON `response` body: its own id and its output items' (what a later
 * `item_reference` names); nulls and none when it has them not or is not JSON.
 */
export function readResponsesJson(
  body: Uint8Array,
): { usage: Usage | null; id: string | null; itemIds: string[] } {
  try {
    const json = JSON.parse(utf8.decode(body)) as unknown;
    if (!isObject(json)) return { usage: null, id: null, itemIds: [] };
    const output = Array.isArray(json.output) ? json.output : [];
    return {
      usage: fromResponsesUsage(json.usage),
      id: typeof json.id === "string" ? json.id : null,
      itemIds: output.flatMap((i) => isObject(i) && typeof i.id === "string" ? [i.id] : []),
    };
  } catch {
    return { usage: null, id: null, itemIds: [] };
  }
}

/** A text or arguments delta's (JSON-escaped) text: counted for the estimate of a cut. */
const DELTA = /"delta"\s*:\s*"((?:[^"\\]|\\.)*)"/;

/**
 * Forward Responses SSE bytes untouched; the terminal event's usage goes to `meter`. The
 * stream must end with its terminal event: after the upstream's `response.failed` or `error`
 * event it fails as told (the client has it); one cut short after some output gets the
 * `response.failed` event (numbered on) the upstream never sent; one cut before any output
 * fails plainly (it never committed: an error answer, as a stream of any format cut then).
 */
export function responsesUsageTap(
  meter: UsageMeter,
  provider: string,
  onId?: (id: string) => void,
): SyncTransformer<Uint8Array, Uint8Array> & { failedEvent(error: GatewayError): Uint8Array } {
  let started: Record<string, unknown> | null = null;
  /** Events so far: the next sequence number (they count from 0, one per event). */
  let events = 0;
  let opened = false;
  let terminal = false;
  /** In the source's flush: an event without its blank line was cut, and is not one. */
  let flushing = false;
  const tail = new SseTail();
  const failure = (message: string, told: boolean) => {
    meter.settle("cut");
    return new GatewayError("upstream_error", `Stream from provider "${provider}" ${message}`, {
      provider,
      ...(told ? { told } : {}),
    });
  };
  const tap = sseTap((data) => {
    events++;
    if (flushing) return;
    const type = sseEventType(data);
    if (type === undefined) return;
    // Output has begun where the stream gate would commit: a cut before it is pre-commit.
    if (!opened && dataHasContent("responses_sse", data)) opened = true;
    if (type.endsWith(".delta")) {
      const text = DELTA.exec(data);
      if (text !== null) meter.content((text[1] as string).length);
    }
    if (started === null && (type === "response.created" || type === "response.in_progress")) {
      started = responseOf(data);
      if (typeof started?.id === "string") onId?.(started.id);
    }
    // Each output item's id, as it opens: a later `item_reference` names it.
    if (onId !== undefined && type === "response.output_item.added") {
      const id = itemIdOf(data);
      if (id !== null) onId(id);
    }
    if (type === "error") throw failure("failed: it sent an error event", true);
    if (
      type !== "response.completed" && type !== "response.incomplete" && type !== "response.failed"
    ) {
      return;
    }
    terminal = true;
    try {
      const event = JSON.parse(data) as { response?: { usage?: unknown } };
      const usage = fromResponsesUsage(event.response?.usage);
      if (usage !== null) meter.report(usage);
    } catch {
      // Not JSON: the bytes still reach the client.
    }
    if (type === "response.failed") throw failure("failed: it sent response.failed", true);
  });
  /** `response.failed` for `message`, numbered on, on a fresh line after a cut mid-event. */
  const failedEvent = (code: string, message: string): Uint8Array => {
    const response = {
      ...(started ?? { object: "response" }),
      status: "failed",
      error: { code, message },
    };
    const error = { type: "error", code, message, param: null, sequence_number: events++ };
    const event = { type: "response.failed", sequence_number: events++, response };
    return encoder.encode(
      `${tail.lead()}event: error\ndata: ${JSON.stringify(error)}\n\n` +
        `event: response.failed\ndata: ${JSON.stringify(event)}\n\n`,
    );
  };
  return {
    /**
     * The events that end a stream the gateway had to break (idle, cut, the deadline), as a
     * translated stream ends: an `error` event, which the OpenAI SDKs throw on (a reader of the
     * text deltas alone would otherwise end as if complete), then the Responses API's own
     * `response.failed` for a reader that goes on.
     */
    failedEvent: (error) =>
      failedEvent(error.status === 429 ? "rate_limit_exceeded" : "server_error", error.message),
    transform(chunk, enqueue) {
      tail.see(chunk);
      tap.transform(chunk, enqueue);
    },
    flush(enqueue) {
      flushing = true;
      tap.flush?.(enqueue);
      if (terminal) return meter.settle("complete");
      const message = "ended before response.completed";
      if (!opened) throw failure(message, false);
      enqueue(failedEvent("server_error", `Stream from provider "${provider}" ${message}`));
      throw failure(message, true);
    },
    cancel: () => meter.settle("cut"),
  };
}

const encoder = new TextEncoder();

/** The `item.id` of a `response.output_item.added` event. */
function itemIdOf(data: string): string | null {
  try {
    const event = JSON.parse(data) as { item?: { id?: unknown } };
    return typeof event.item?.id === "string" ? event.item.id : null;
  } catch {
    return null;
  }
}

/** The `response` object of a `response.created` / `response.in_progress` event. */
function responseOf(data: string): Record<string, unknown> | null {
  try {
    const event = JSON.parse(data) as { response?: unknown };
    return isObject(event.response) ? event.response : null;
  } catch {
    return null;
  }
}
