/**
 * The response cache: key derivation, the stage, the memory LRU and the Redis backend.
 * @module
 */
export {
  cacheKeyText,
  type CachePolicy,
  digestKey,
  memoryKey,
  type Skip,
  skipReason,
  stableJson,
} from "./key.ts";
export { BUTTER_CACHE_HEADER, CACHE_HEADER, type CachedAnswer, createCacheStage } from "./stage.ts";
export { type CacheBackend, createMemoryCache, entryBytes } from "./store.ts";
export { replayChunks } from "./replay.ts";
