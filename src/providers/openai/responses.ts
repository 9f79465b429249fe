/**
 * The Responses API spoken natively (`responses: native`): where usage sits in its answers.
 * A JSON response carries `usage` at the top level; a stream carries it on its terminal
 * `response.completed` / `response.incomplete` event, inside `response`.
 * @module
 */
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

/** Forward Responses SSE bytes untouched; the terminal event's usage goes to `meter`. */
export function responsesUsageTap(meter: UsageMeter): SyncTransformer<Uint8Array, Uint8Array> {
  return sseTap(
    (data) => {
      if (!TERMINAL.test(data)) return;
      try {
        const event = JSON.parse(data) as { response?: { usage?: unknown } };
        const usage = fromResponsesUsage(event.response?.usage);
        if (usage !== null) meter.report(usage);
      } catch {
        // Not JSON: the bytes still reach the client.
      }
    },
    () => meter.settle("complete"),
    () => meter.settle("cut"),
  );
}
