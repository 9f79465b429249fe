/**
 * HTTP routes. Each handler reads the request's Runtime from the context and sets the
 * data the access log needs.
 * @module
 */
export { chatCompletions } from "./chat_completions.ts";
export { embeddings } from "./embeddings.ts";
export { listModels } from "./models.ts";
export { messages } from "./messages.ts";
export { nativePassthrough } from "./passthrough.ts";
export { health, healthz, ready } from "./health.ts";
export type { AppEnv, RequestVars } from "./context.ts";
