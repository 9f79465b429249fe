/**
 * Inbound OpenAI Responses API (`POST /v1/responses`, `POST /v1/responses/input_tokens`):
 * wire types and request validation. Errors use OpenAI's envelope (`schema/openai.ts`).
 * @module
 */
import { GatewayError } from "../errors.ts";
import { type GatewayOptions, parseGatewayOptions } from "./gateway.ts";
import { isObject } from "./openai.ts";

/** One input (or stored output) item; only the fields the translation reads are typed. */
export interface ResponsesItem {
  type?: string;
  [field: string]: unknown;
}

/** A Responses API request; fields we do not interpret are kept for native passthrough. */
export interface ResponsesRequest {
  model: string;
  input?: string | ResponsesItem[];
  instructions?: string | null;
  tools?: Record<string, unknown>[];
  tool_choice?: unknown;
  parallel_tool_calls?: boolean | null;
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  text?: { format?: Record<string, unknown>; [field: string]: unknown } | null;
  reasoning?: { effort?: string | null; [field: string]: unknown } | null;
  metadata?: Record<string, string> | null;
  user?: string | null;
  stream?: boolean | null;
  store?: boolean | null;
  previous_response_id?: string | null;
  [field: string]: unknown;
}

export interface ParsedResponsesRequest {
  body: ResponsesRequest;
  gateway: GatewayOptions;
}

/** Output item and usage shapes the gateway builds for translated answers. */
export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export interface ResponsesObject {
  id: string;
  object: "response";
  created_at: number;
  status: "completed" | "incomplete" | "failed" | "in_progress";
  error: { code: string; message: string } | null;
  incomplete_details: { reason: string } | null;
  model: string;
  output: ResponsesItem[];
  usage: ResponsesUsage | null;
  [field: string]: unknown;
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}

function optional(
  raw: Record<string, unknown>,
  field: string,
  check: (v: unknown) => boolean,
  what: string,
): void {
  const v = raw[field];
  if (v !== undefined && v !== null && !check(v)) {
    throw invalid(`"${field}" must be ${what}`, field);
  }
}

const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/**
 * Validate a Responses API request body: what the gateway relies on (model, input, stream,
 * store, previous_response_id, x-gateway) and obvious type errors, naming the field. Items
 * are checked where they are translated (a native provider judges its own).
 */
export function parseResponsesRequest(raw: unknown): ParsedResponsesRequest {
  if (!isObject(raw)) throw invalid("Request body must be a JSON object", "body");
  if (typeof raw.model !== "string" || raw.model.trim() === "") {
    throw invalid(
      raw.model === undefined
        ? `Missing required field "model"`
        : `"model" must be a non-empty string`,
      "model",
    );
  }
  const input = raw.input;
  if (input !== undefined && typeof input !== "string" && !Array.isArray(input)) {
    throw invalid(`"input" must be a string or an array of items`, "input");
  }
  if (Array.isArray(input)) {
    input.forEach((item, i) => {
      if (!isObject(item)) throw invalid(`"input[${i}]" must be an object`, `input[${i}]`);
    });
  }
  if (input === undefined && typeof raw.previous_response_id !== "string") {
    throw invalid(`Missing required field "input"`, "input");
  }
  optional(raw, "instructions", (v) => typeof v === "string", "a string");
  optional(raw, "stream", (v) => typeof v === "boolean", "a boolean");
  optional(raw, "store", (v) => typeof v === "boolean", "a boolean");
  optional(raw, "parallel_tool_calls", (v) => typeof v === "boolean", "a boolean");
  optional(raw, "previous_response_id", (v) => typeof v === "string" && v !== "", "a response id");
  // Both come back in the response object: bounded so that serialising it cannot overflow.
  optional(
    raw,
    "tools",
    (v) => Array.isArray(v) && v.every(isObject) && !deeper(v, MAX_DEPTH),
    `an array of tools nested at most ${MAX_DEPTH} levels deep`,
  );
  optional(
    raw,
    "text",
    (v) => isObject(v) && !deeper(v, MAX_DEPTH),
    `an object nested at most ${MAX_DEPTH} levels deep`,
  );
  optional(raw, "reasoning", isObject, "an object");
  // OpenAI's bounds: up to 16 pairs of strings, keys up to 64 characters, values up to 512.
  optional(
    raw,
    "metadata",
    (v) =>
      isObject(v) && Object.keys(v).length <= 16 &&
      Object.entries(v).every(([k, x]) =>
        k.length <= 64 && typeof x === "string" && x.length <= 512
      ),
    "an object of up to 16 strings (keys up to 64 characters, values up to 512)",
  );
  optional(raw, "user", (v) => typeof v === "string", "a string");
  optional(
    raw,
    "temperature",
    (v) => isNumber(v) && (v as number) >= 0 && (v as number) <= 2,
    "a number between 0 and 2",
  );
  optional(
    raw,
    "top_p",
    (v) => isNumber(v) && (v as number) >= 0 && (v as number) <= 1,
    "a number between 0 and 1",
  );
  optional(
    raw,
    "max_output_tokens",
    (v) => Number.isInteger(v) && (v as number) >= 1,
    "a positive integer",
  );
  const gateway = parseGatewayOptions(raw["x-gateway"]);
  const { "x-gateway": _ext, ...body } = raw;
  return { body: body as ResponsesRequest, gateway };
}

/** `resp_...` ids of answers the gateway produced (hex, like OpenAI's). */
export function newResponseId(prefix: "resp" | "msg" | "fc" | "rs"): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Nesting allowed in the fields echoed back (a JSON Schema is rarely 20 levels deep). */
const MAX_DEPTH = 64;

/** Whether `value` nests objects or arrays more than `max` levels deep (no recursion). */
function deeper(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}
