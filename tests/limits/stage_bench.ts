/**
 * `deno bench --config tests/deno.json tests/limits/stage_bench.ts`: what the limiter costs
 * one admitted JSON request on the memory backend (bench/configs/limits.yaml: global
 * requests and tokens per minute): `pre_llm` (token estimate, admission), `post_http` (the
 * three headers) and the `request_end` reconciliation.
 */
import { parseConfigText } from "../../src/config/mod.ts";
import type { Exchange } from "../../src/pipeline/exchange.ts";
import type { HttpResponseView, LlmRequestView } from "../../src/pipeline/stages.ts";
import type { TelemetryEvent } from "../../src/pipeline/events.ts";
import { createLimiter } from "../../src/limits/mod.ts";
import { createLogger } from "../../src/telemetry/mod.ts";
import { knownUsage } from "../../src/streaming/mod.ts";

const { config } = parseConfigText(
  `providers:
  up: { type: openai, base_url: http://upstream.invalid/v1 }
features:
  rate_limiting:
    enabled: true
    backend: memory
    limits: { requests_per_minute: 100000000, tokens_per_minute: 100000000000 }
`,
  () => undefined,
  "bench.yaml",
);
const limiter = createLimiter(config, {
  logger: createLogger({ level: "error", write: () => {}, redact: (s: string) => s }),
  now: Date.now,
  owner: {},
})!;
const stage = limiter.stage;

const text = "The quarterly report covers revenue, hiring and the product roadmap for next year. "
  .repeat(11).slice(0, 900);
const body = {
  model: "up/gpt-4o-mini",
  messages: [{ role: "user", content: text }],
  max_tokens: 32,
};
const view = { schema: "openai_chat", body } as unknown as LlmRequestView;
const usage = knownUsage({ prompt_tokens: 180, completion_tokens: 9, total_tokens: 189 });
const headers = new Headers({ "content-type": "application/json", "content-length": "1000" });
const events = { on: { rate_limit: true }, emit() {} };

function exchange(): Exchange {
  return {
    schema: "openai_chat",
    path: "/v1/chat/completions",
    search: "",
    headers,
    model: "up/gpt-4o-mini",
    provider: undefined,
    targets: [{ provider: "up", model: "gpt-4o-mini" }],
    principal: { ip: "127.0.0.1" },
    request: { schema: "openai_chat", body },
    attempts: [{ provider: "up", model: "gpt-4o-mini", usage }],
    usage: null,
    runtime: { events, adapters: new Map() },
  } as unknown as Exchange;
}

Deno.bench("rate limit, memory backend: one admitted JSON request", () => {
  const ex = exchange();
  stage.pre_llm!(ex, view);
  stage.post_http!(ex, { status: 200, headers: new Headers() } as HttpResponseView);
  stage.trace!({ type: "request_end", exchange: ex } as TelemetryEvent);
});
