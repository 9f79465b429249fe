/**
 * Streaming: SSE framing, pass-through observation, usage taps. Web Streams only.
 * @module
 */
export {
  cutRelay,
  observeStream,
  recordedFailure,
  RelayedFailure,
  relayStream,
  type StreamObserver,
  type StreamOutcome,
} from "./observe.ts";
export { pullThrough, type SyncTransformer, toTransformStream } from "./pull.ts";
export { chunkReader, markByteStream } from "./reader.ts";
export {
  concatBytes,
  createSseDataReader,
  createSseDataStream,
  createSseEndStream,
  createSseTap,
  encodeSseData,
  encodeSseEvent,
  SSE_DONE,
  SseEnd,
  sseEventType,
  SseTail,
  sseTap,
} from "./sse.ts";
export {
  createOpenAIUsageStrip,
  createOpenAIUsageTap,
  findOpenAIUsage,
  openAIUsageStrip,
  openAIUsageTap,
  readOpenAIUsage,
} from "./usage_tap.ts";
export {
  type ChunkMeta,
  createOpenAIChunkSender,
  createOpenAIChunkWriter,
  createToolCallDeltas,
  type OpenAIChunkSender,
  type OpenAIChunkWriter,
  type ToolCallDeltas,
} from "./openai_chunks.ts";
export {
  balancedObject,
  createUsageSniffer,
  num,
  pickUsage,
  type StreamFailures,
  type UsageShapes,
} from "./usage_sniff.ts";
export {
  createUsageMeter,
  knownUsage,
  meterChunks,
  noUsage,
  promptBytes,
  replayedUsage,
  textChars,
  type UsageMeter,
  usageNow,
  usageReported,
} from "./usage.ts";
export { decodeOpenAISse, encodeOpenAIChunks } from "./openai_sse.ts";
export {
  type GateFormat,
  type GateOptions,
  type GateSchedule,
  gateStream,
  StreamIdleTimeout,
} from "./gate.ts";
