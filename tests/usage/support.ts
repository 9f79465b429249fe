/**
 * What the usage tests share: the access-log line of one request (found by its
 * `x-request-id`), and a cost comparison to the micro-dollar.
 */
import assert from "node:assert/strict";
import type { InProcessGateway } from "../helpers/in_process.ts";

export interface RequestLine {
  request_id: string;
  route: string;
  status: number;
  provider: string | null;
  model: string | null;
  prompt_tokens?: number;
  completion_tokens?: number;
  cached_tokens?: number;
  cache_write_tokens?: number;
  reasoning_tokens?: number;
  cost_usd?: number;
  usage_estimated?: boolean;
  cache?: "hit" | "miss";
  outcome?: string;
}

/** The access-log line of the request that answered `res` (waits until it is written). */
export async function lineOf(gw: InProcessGateway, res: Response): Promise<RequestLine> {
  const id = res.headers.get("x-request-id");
  assert.ok(id, "the response carries x-request-id");
  return await lineById(gw, id);
}

export async function lineById(gw: InProcessGateway, id: string): Promise<RequestLine> {
  await gw.waitForLog(`"request_id":"${id}"`);
  const text = gw.logs.find((l) => l.includes(`"request_id":"${id}"`)) as string;
  return JSON.parse(text) as RequestLine;
}

/** Equal to the micro-dollar (costs are summed in nano-dollars: exact in practice). */
export function assertUsd(actual: number | undefined | null, expected: number, what = "cost") {
  assert.ok(typeof actual === "number", `${what}: expected a number, got ${actual}`);
  assert.ok(
    Math.abs(actual - expected) < 1e-6 / 2,
    `${what}: ${actual} is not ${expected} to the micro-dollar`,
  );
  // And exactly, to the nano-dollar: no float drift.
  assert.equal(Math.round(actual * 1e9), Math.round(expected * 1e9), what);
}

export const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});
