/**
 * The Messages API field behind a canonical (chat) field an error names. A `/v1/messages`
 * request served through its canonical form can fail on a chat field (a provider's
 * translation, an OpenAI-compatible upstream's 400): the client must read the field it sent,
 * `messages[i]` at its own index (the system prompt and tool results shift the chat's), and
 * `tools[i].input_schema` or `stop_sequences` rather than chat's names for them.
 * @module
 */
import type { OpenAIChatRequest } from "../schema/openai.ts";
import { originsSlot } from "./origins.ts";

/** Where one canonical message came from in the client's request. */
export type MessageOrigin =
  | { readonly kind: "system" }
  /** A `tool_result` block (`messages[i].content[j]`), which became a `tool` message. */
  | { readonly kind: "tool_result"; readonly at: string; readonly message: string }
  | {
    readonly kind: "message";
    /** `messages[i]`. */
    readonly at: string;
    /** Per content part: the block it came from, and the field its URL was read from. */
    readonly parts: readonly PartOrigin[];
    /** Per tool call: the `tool_use` block it came from. */
    readonly calls: readonly string[];
  };

export interface PartOrigin {
  readonly at: string;
  /** `.source.url` or `.source.data`: what an image part's `image_url.url` was. */
  readonly url?: string;
}

const ORIGINS = originsSlot<MessageOrigin>("messagesOrigins");

/** Records, on the canonical request, where each of its messages came from. */
export const withOrigins = ORIGINS.attach;

/** Chat fields the translation fills from a differently named Messages field. */
const MESSAGES_FIELD: Readonly<Record<string, string>> = {
  max_completion_tokens: "max_tokens",
  stop: "stop_sequences",
  user: "metadata.user_id",
  parallel_tool_calls: "tool_choice.disable_parallel_tool_use",
  "tool_choice.function": "tool_choice.name",
  "tool_choice.function.name": "tool_choice.name",
  response_format: "output_config.format",
  "response_format.type": "output_config.format.type",
  "response_format.json_schema": "output_config.format",
  "response_format.json_schema.schema": "output_config.format.schema",
  "response_format.json_schema.name": "output_config.format",
  // The translation asks for usage on a stream: the client only said `stream`.
  stream_options: "stream",
  "stream_options.include_usage": "stream",
};

/** A tool definition's or call's chat fields -> the Messages block's. */
const FUNCTION_FIELD: Readonly<Record<string, string>> = {
  ".function": "",
  ".function.name": ".name",
  ".function.parameters": ".input_schema",
  ".function.description": ".description",
  ".function.arguments": ".input",
};

const MESSAGE_PATH = /^messages\[(\d+)\](.*)$/;
const TOOL_PATH = /^tools\[(\d+)\](\.function(?:\.[a-z_]+)?)(.*)$/;

/**
 * The field of the client's Messages request behind `param`, a canonical request field.
 * `canonical` is the request as translated: without its record of origins (a stage
 * rewrote it), a message keeps the chat's index.
 */
export function messagesParam(param: string, canonical: OpenAIChatRequest | null): string {
  const mapped = MESSAGES_FIELD[param];
  if (mapped !== undefined) return mapped;
  const tool = TOOL_PATH.exec(param);
  if (tool !== null) {
    const field = FUNCTION_FIELD[tool[2]!];
    if (field !== undefined) return `tools[${tool[1]}]${field}${tool[3]}`;
  }
  const message = MESSAGE_PATH.exec(param);
  const origins = ORIGINS.read(canonical);
  if (message === null || origins === null) return param;
  const origin = origins[Number(message[1])];
  return origin === undefined ? param : fromOrigin(origin, message[2]!);
}

/** A canonical message's field (`rest`, after `messages[c]`) at its origin. */
function fromOrigin(origin: MessageOrigin, rest: string): string {
  switch (origin.kind) {
    case "system":
      return "system";
    case "tool_result":
      if (rest === ".role") return `${origin.message}.role`;
      if (rest.startsWith(".tool_call_id")) return `${origin.at}.tool_use_id${rest.slice(13)}`;
      return `${origin.at}${rest}`;
    case "message": {
      const part = /^\.content\[(\d+)\](.*)$/.exec(rest);
      if (part !== null) {
        const from = origin.parts[Number(part[1])];
        if (from === undefined) return `${origin.at}.content`;
        const sub = part[2]!;
        if (from.url !== undefined && sub.startsWith(".image_url")) return from.at + from.url;
        return from.at + sub;
      }
      const call = /^\.tool_calls\[(\d+)\](\.function(?:\.[a-z_]+)?)?(.*)$/.exec(rest);
      if (call !== null) {
        const from = origin.calls[Number(call[1])];
        if (from === undefined) return `${origin.at}.content`;
        return from + (call[2] !== undefined ? FUNCTION_FIELD[call[2]] ?? call[2] : "") + call[3];
      }
      if (rest === ".tool_calls") return `${origin.at}.content`;
      return origin.at + rest;
    }
  }
}

/** Chat field paths as they appear in error messages (ours quote them, OpenAI's too). */
const PATH_IN_TEXT = /\b(?:messages|tools)\[\d+\](?:\.[A-Za-z_]+|\[\d+\])*/g;

/**
 * An error message in the client's terms: every message or tool path it names, and `param`
 * itself where it is a chat-only field (quoted, or bare when no sentence would use it).
 */
export function messagesText(
  text: string,
  param: string,
  canonical: OpenAIChatRequest | null,
): string {
  const out = text.replace(PATH_IN_TEXT, (path) => messagesParam(path, canonical));
  const named = MESSAGES_FIELD[param];
  return named === undefined ? out : fieldText(out, param, named);
}

/**
 * `text` with the chat-only field `param` named `named`: quoted, or bare when no sentence
 * would use the name (`max_completion_tokens`, not `stop` or `user`).
 */
export function fieldText(text: string, param: string, named: string): string {
  const bare = /[_.]/.test(param) ? "?" : "";
  const q = `["'\`]${bare}`;
  const escaped = param.replaceAll(".", "\\.");
  return text.replace(
    new RegExp(`(?<![\\w.])(${q})${escaped}(?![\\w[]|\\.\\w)`, "g"),
    (_m, quote: string) => quote + named,
  );
}
