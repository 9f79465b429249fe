/**
 * The Responses API spoken natively (`responses: native`): where usage sits in its answers.
 * A JSON response carries `usage` at the top level; a stream carries it on its terminal
 * `response.completed` / `response.incomplete` event, inside `response`.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import type { Usage } from "../types.ts";
import { sseTap, type SyncTransformer, type UsageMeter } from "../../streaming/mod.ts";

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const n = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** Responses usage (`input_tokens`, `output_tokens`, details) → canonical usage. */
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

/** Usage of a JSON `response` body (null when it has none or is not JSON). */
export function findResponsesUsage(body: Uint8Array): Usage | null {
  try {
    const json = JSON.parse(new TextDecoder().decode(body)) as unknown;
    return isObject(json) ? fromResponsesUsage(json.usage) : null;
  } catch {
    return null;
  }
}

const TERMINAL = /"type"\s*:\s*"response\.(completed|incomplete|failed)"/;
/** The upstream's own failure events: the client has them as they came. */
const FAILED = /"type"\s*:\s*"(?:response\.failed|error)"/;
const STARTED = /"type"\s*:\s*"response\.(?:created|in_progress)"/;
const SEQUENCE = /"sequence_number"\s*:\s*(\d+)/;

/**
 * Forward Responses SSE bytes untouched; the terminal event's usage goes to `meter`. The
 * stream must end with its terminal event: after the upstream's `response.failed` or `error`
 * event it fails as told (the client has it); one that stops before any terminal event was
 * cut short, and gets the `response.failed` event (numbered on) the upstream never sent.
 */
export function responsesUsageTap(
  meter: UsageMeter,
  provider: string,
): SyncTransformer<Uint8Array, Uint8Array> {
  let started: Record<string, unknown> | null = null;
  let sequence = -1;
  let terminal = false;
  const failure = (message: string, told: boolean) =>
    new GatewayError("upstream_error", `Stream from provider "${provider}" ${message}`, {
      provider,
      ...(told ? { told } : {}),
    });
  const tap = sseTap(
    (data) => {
      const seq = SEQUENCE.exec(data);
      if (seq !== null) sequence = Number(seq[1]);
      if (started === null && STARTED.test(data)) started = responseOf(data);
      if (!TERMINAL.test(data)) {
        if (FAILED.test(data)) throw failure("failed: it sent an error event", true);
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
      if (FAILED.test(data)) throw failure("failed: it sent response.failed", true);
    },
  );
  return {
    transform: tap.transform,
    flush(enqueue) {
      tap.flush?.(enqueue);
      if (terminal) return meter.settle("complete");
      meter.settle("cut");
      const message = "ended before response.completed";
      const response = {
        ...(started ?? { object: "response" }),
        status: "failed",
        error: { code: "server_error", message: `Stream from provider "${provider}" ${message}` },
      };
      const event = { type: "response.failed", sequence_number: sequence + 1, response };
      enqueue(encoder.encode(`event: response.failed\ndata: ${JSON.stringify(event)}\n\n`));
      throw failure(message, true);
    },
    cancel: () => meter.settle("cut"),
  };
}

const encoder = new TextEncoder();

/** The `response` object of a `response.created` / `response.in_progress` event. */
function responseOf(data: string): Record<string, unknown> | null {
  try {
    const event = JSON.parse(data) as { response?: unknown };
    return isObject(event.response) ? event.response : null;
  } catch {
    return null;
  }
}
