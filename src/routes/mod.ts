/**
 * HTTP routes: decode the request into the exchange (the context's only per-request
 * state), run it (src/pipeline/run.ts), answer in the route's own format.
 * @module
 */
export { chatCompletions } from "./chat_completions.ts";
export { embeddings } from "./embeddings.ts";
export { getModel, listModels, modelsFormat } from "./models.ts";
export { messages } from "./messages.ts";
export {
  cancelResponse,
  deleteResponse,
  getResponse,
  responseInputItems,
  responses,
} from "./responses.ts";
export { countTokens } from "./count_tokens.ts";
export { nativePassthrough } from "./passthrough.ts";
export { health, healthz, ready } from "./health.ts";
export type { AppEnv, RequestVars } from "./context.ts";
