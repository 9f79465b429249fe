/**
 * Format translation between the inbound APIs the gateway speaks, for requests whose target
 * provider speaks another one. Pure functions and per-request stream transformers; no I/O.
 * @module
 */
export { type ChatView, toOpenAIChatRequest, toOpenAIChatView } from "./anthropic_to_openai.ts";
export {
  createMessagesStreamTransformer,
  encodeMessagesStream,
  type MessagesStreamContext,
  toMessagesResponse,
  toMessagesStream,
  toMessagesUsage,
  toStopReason,
} from "./openai_to_anthropic.ts";
export { inputItems, resolvedInput, toChatRequestFromResponses } from "./responses_to_openai.ts";
export {
  createResponsesStreamTransformer,
  responseObject,
  type ResponsesContext,
  type ResponsesStreamEncoder,
  toResponsesObject,
  toResponsesUsage,
} from "./openai_to_responses.ts";
