/**
 * Local token counts for OpenAI-family models, which have no counting endpoint for chat
 * requests: `gpt-tokenizer`'s o200k_base (GPT-4o and later, the o-series) or cl100k_base
 * (GPT-4, GPT-3.5), loaded on first use so sidecars that never count pay nothing. Counts
 * follow OpenAI's chat framing (a few tokens per message and for the reply's priming);
 * tool definitions are counted as their JSON and images by OpenAI's low/high detail base
 * cost, so the result is an estimate and is reported as one.
 * @module
 */
import { GatewayError } from "../../errors.ts";
import type { OpenAIChatRequest } from "../../schema/openai.ts";

type Counter = (text: string) => number;

let o200k: Promise<Counter> | null = null;
let cl100k: Promise<Counter> | null = null;

/** The encoding of `model`: cl100k for the GPT-4 / GPT-3.5 generation, o200k otherwise. */
export function encodingFor(model: string): "o200k_base" | "cl100k_base" {
  const m = model.toLowerCase().replace(/^.*\//, "");
  if (/^gpt-4o|^gpt-4\.[1-9]|^gpt-[5-9]|^o[1-9]|^chatgpt-4o|^gpt-oss/.test(m)) return "o200k_base";
  if (/^gpt-4|^gpt-3\.5|^text-embedding-3|^text-embedding-ada/.test(m)) return "cl100k_base";
  return "o200k_base";
}

function counter(encoding: "o200k_base" | "cl100k_base"): Promise<Counter> {
  if (encoding === "cl100k_base") {
    return cl100k ??= loaded(
      import("gpt-tokenizer/encoding/cl100k_base"),
      () => cl100k = null,
    );
  }
  return o200k ??= loaded(import("gpt-tokenizer/encoding/o200k_base"), () => o200k = null);
}

/**
 * The encoding's counter. A failed load is the gateway's own fault (500, never the
 * provider's: the breaker must not count it), retried on the next count.
 */
function loaded(
  module: Promise<{ countTokens(text: string): number }>,
  forget: () => void,
): Promise<Counter> {
  return module.then(
    (m) => (text: string) => m.countTokens(text),
    (err: unknown) => {
      forget();
      throw new GatewayError("internal", "The local tokenizer could not be loaded", {
        cause: err,
      });
    },
  );
}

/** Per OpenAI's cookbook: every message is framed by 3 tokens, a name costs 1 more. */
const PER_MESSAGE = 3;
const PER_NAME = 1;
/** The reply is primed with `<|start|>assistant<|message|>`. */
const REPLY_PRIMING = 3;
/** A low-detail image; high detail adds 170 per 512 px tile (dimensions unknown: 4 tiles). */
const IMAGE_LOW = 85;
const IMAGE_HIGH = 85 + 170 * 4;

/** The input tokens of a chat request for `model`, counted locally. */
export async function countChatTokens(body: OpenAIChatRequest, model: string): Promise<number> {
  const count = await counter(encodingFor(model));
  let total = REPLY_PRIMING;
  for (const m of body.messages) {
    total += PER_MESSAGE + count(m.role);
    if (typeof m.name === "string") total += PER_NAME + count(m.name);
    if (typeof m.content === "string") total += count(m.content);
    else if (Array.isArray(m.content)) {
      for (const part of m.content) {
        if (part.type === "text" && typeof part.text === "string") total += count(part.text);
        else if (part.type === "image_url") {
          const detail = (part.image_url as { detail?: unknown } | undefined)?.detail;
          total += detail === "low" ? IMAGE_LOW : IMAGE_HIGH;
        } else total += count(JSON.stringify(part));
      }
    }
    if (Array.isArray(m.tool_calls)) total += count(JSON.stringify(m.tool_calls));
    if (typeof m.tool_call_id === "string") total += count(m.tool_call_id);
  }
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    total += count(JSON.stringify(body.tools));
  }
  if (body.response_format !== undefined && body.response_format !== null) {
    total += count(JSON.stringify(body.response_format));
  }
  return total;
}
