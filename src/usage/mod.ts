/**
 * Usage and cost: the price book, cost arithmetic, the metering subscriber and the rollups
 * (memory, the embedded SQLite file, Redis) behind `GET /api/v1/usage`.
 * @module
 */
export { BUILTIN_PRICES, builtinPrice, createPriceBook, type PriceBook } from "./pricing.ts";
export { costOf, formatUsd, splitTokens, type TokenSplit } from "./cost.ts";
export { type Bill, billOf, COST_HEADER, createMeter, promptEstimate } from "./meter.ts";
export { createLedger, type UsageLedger } from "./ledger.ts";
export {
  createMemoryRollups,
  type Period,
  PERIODS,
  type UsageQuery,
  type UsageRecord,
  type UsageReport,
} from "./rollup.ts";
export { CACHE_DEFAULTS, createStateResources, type StateResources } from "./resources.ts";
