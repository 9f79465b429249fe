/**
 * `deno bench --config tests/deno.json tests/usage/meter_bench.ts`: what metering costs one
 * JSON request (it is always on, so bench:pipeline's baseline includes it): the cost header
 * (`post_http`) and the `request_end` subscriber (bill + rollups), memory rollups and the
 * pending deltas of the state file.
 */
import { parseConfigText } from "../../src/config/mod.ts";
import type { EventOf } from "../../src/pipeline/events.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";
import type { HttpResponseView } from "../../src/pipeline/stages.ts";
import { knownUsage } from "../../src/streaming/mod.ts";
import {
  createLedger,
  createMemoryRollups,
  createMeter,
  createPriceBook,
} from "../../src/usage/mod.ts";
import type { RollupBackend } from "../../src/usage/rollup.ts";

const { config } = parseConfigText(
  "providers:\n  up:\n    type: openai\n    base_url: http://upstream.invalid/v1\n",
  () => undefined,
  "bench.yaml",
);
const usage = knownUsage({ prompt_tokens: 9, completion_tokens: 9, total_tokens: 18 });

function exchange(): Exchange {
  return {
    cacheStatus: "miss",
    attempts: [{ provider: "up", model: "gpt-4o-mini", usage }],
    provider: "up",
    model: "gpt-4o-mini",
    principal: { appKey: "cfg_0123456789abcdef" },
    gateway: {},
    request: null,
    stream: false,
    schema: "openai_chat",
    billedUsage: null,
    cost: null,
    costEstimated: false,
  } as unknown as Exchange;
}

/** A backend that takes batches (what SQLite and Redis are to the ledger), writing nothing. */
const batches: RollupBackend = { kind: "sqlite", apply() {}, rows: () => [], close() {} };

for (const [name, backend] of [["memory", createMemoryRollups()], ["batched", batches]] as const) {
  const meter = createMeter({
    prices: createPriceBook(config),
    ledger: createLedger(backend, { now: Date.now, flushMs: 60_000, onError() {} }),
    now: Date.now,
  });
  Deno.bench(`metering one JSON request (${name} rollups)`, () => {
    const ex = exchange();
    meter.stage.post_http!(ex, { status: 200, headers: new Headers() } as HttpResponseView);
    meter.onRequestEnd({ type: "request_end", exchange: ex } as EventOf<"request_end">);
  });
}
