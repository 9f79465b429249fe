/**
 * Provider adapters: pure request/response translation plus `execute.ts`, the only code
 * that calls `fetch` for the unified API.
 * @module
 */
export { createAdapters } from "./registry.ts";
export {
  executeUpstream,
  type UpstreamReply,
  type UpstreamRequest,
  type UpstreamTrace,
} from "./execute.ts";
export { MOCK_MODELS } from "./mock/adapter.ts";
export type {
  AdapterDeps,
  CallBasics,
  ChatCall,
  ChatChunk,
  ChatOutcome,
  EmbeddingsCall,
  JsonOutcome,
  JsonWire,
  MessagesCall,
  NativeApi,
  ProviderAdapter,
  RawOutcome,
  SseWire,
  StreamOutcome,
  Usage,
} from "./types.ts";
export { decodeJson, decodeStream } from "./wire.ts";
