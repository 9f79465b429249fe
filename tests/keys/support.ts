/**
 * Shared bits of the app-key tests: a config with app keys and the mock provider, admin
 * calls, a chat request with a key, and a stage that charges each request a fixed cost
 * (what the metering subscriber does in production) so budgets can be driven exactly.
 * @module
 */
import type { Stage } from "../../src/pipeline/stages.ts";
import type { InProcessGateway } from "../helpers/in_process.ts";

export const ADMIN = "admin-secret-token";

/** A config: the mock provider, the admin API, app keys with `extra` appended under `app_keys`. */
export function keysConfig(opts: { appKeys?: string; state?: string; more?: string } = {}): string {
  return `
server:
  admin_token: ${ADMIN}
providers:
  mock: {}
state:
${opts.state ?? "  backend: memory"}
app_keys:
  enabled: true
${opts.appKeys ?? "  persistence: { enabled: false }"}
${opts.more ?? ""}
`;
}

/** A stage whose `request_end` sets `ex.cost` to `usd` (null: no cost known). */
export function chargeStage(usd: () => number | null): Stage {
  return {
    name: "test_charge",
    fail_mode: "closed",
    timeout_ms: 1000,
    trace(e) {
      if (e.type === "request_end") e.exchange.cost = usd();
    },
    trace_events: ["request_end"],
  };
}

export async function admin(
  gw: Pick<InProcessGateway, "request">,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await gw.request(path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: await res.json() };
}

/** Create a key through the admin API; returns its id and (once-shown) value. */
export async function createKey(
  gw: Pick<InProcessGateway, "request">,
  body: Record<string, unknown> = { name: "test" },
): Promise<{ id: string; key: string }> {
  const r = await admin(gw, "POST", "/api/v1/keys", body);
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.json)}`);
  return { id: r.json.id as string, key: r.json.key as string };
}

/** A chat completion on the mock provider with `headers`; the body is consumed. */
export async function chat(
  gw: Pick<InProcessGateway, "request">,
  headers: Record<string, string>,
  model = "mock/echo",
): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> {
  const res = await gw.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
