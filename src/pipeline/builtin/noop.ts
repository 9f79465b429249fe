import type { Stage } from "../stages.ts";

/**
 * Stages that do nothing on every hook, to measure what the chain itself costs
 * (`PILOTFISH_BENCH_NOOP_STAGES`, read by the daemon only when that variable is granted;
 * see bench/main.ts).
 */
export function noopStages(count: number): Stage[] {
  const out: Stage[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      name: `noop-${i + 1}`,
      fail_mode: "open",
      timeout_ms: 1_000,
      pre_http: () => undefined,
      pre_llm: () => undefined,
      post_llm: () => undefined,
      post_llm_body: false,
      post_http: () => undefined,
    });
  }
  return out;
}
