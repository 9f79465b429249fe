/**
 * OpenAI chat requests for the request-translation tests: a builder and the inputs the
 * providers' tests share.
 * @module
 */
import type { OpenAIChatRequest, OpenAIMessage } from "../../src/schema/openai.ts";

/** A builder of OpenAI chat requests for `model`: `req(messages, extra)`. */
export function requestBuilder(
  model: string,
): (messages: OpenAIMessage[], extra?: Record<string, unknown>) => OpenAIChatRequest {
  return (messages, extra = {}) => ({ model, messages, ...extra });
}

/** One user message: "Hi". */
export const HI: OpenAIMessage[] = [{ role: "user", content: "Hi" }];

/** A plain function tool with a one-property JSON schema. */
export const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
