/**
 * The gateway in-process for pipeline tests: the real app and Runtime, a scripted upstream
 * behind a fake `fetch` (no network), extra stages registered through `RuntimeDeps.stages`,
 * and an injectable clock and timer for stage budgets.
 * @module
 */
import { parseConfigText } from "../../src/config/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { buildRuntime, type Runtime } from "../../src/runtime.ts";
import { createApp } from "../../src/server/app.ts";
import type { Clock } from "../../src/pipeline/exchange.ts";
import type { Schedule, Stage } from "../../src/pipeline/stages.ts";
import type { TelemetryEvent } from "../../src/pipeline/events.ts";
import { type Handler, type Recorded, recordingFetch } from "../helpers/fake_fetch.ts";

export const CONFIG = `
providers:
  up: { base_url: "http://up.test/v1", keys: [{ key: sk-up-configured-0001 }] }
  claude:
    type: anthropic
    base_url: "http://claude.test/v1"
    keys: [{ key: sk-ant-configured-0002 }]
routing:
  failover: { enabled: false }
`;

export const USAGE = { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 };

const enc = new TextEncoder();
const sse = (events: unknown[], done = true) =>
  events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + (done ? "data: [DONE]\n\n" : "");

export const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "gpt-up",
  choices: [{ index: 0, delta, finish_reason: finish }],
});

/** An OpenAI-compatible upstream (chat JSON/SSE, embeddings) and an Anthropic one. */
export const UPSTREAM: Handler = (url, init) => {
  const raw = init.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : init.body;
  const body = raw ? JSON.parse(String(raw)) : {};
  const json = (value: unknown, status = 200) =>
    new Response(JSON.stringify(value), {
      status,
      headers: { "content-type": "application/json" },
    });
  if (url.startsWith("http://up.test/v1/embeddings")) {
    return json({
      object: "list",
      data: [{ object: "embedding", index: 0, embedding: [0.5] }],
      model: body.model,
      usage: { prompt_tokens: 3, total_tokens: 3 },
    });
  }
  if (url.startsWith("http://up.test/v1/chat/completions")) {
    if (body.stream) {
      return new Response(
        enc.encode(sse([
          chunk({ role: "assistant", content: "" }),
          chunk({ content: "Hello" }),
          chunk({ content: " world" }),
          chunk({}, "stop"),
          { ...chunk({}), choices: [], usage: USAGE },
        ])),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    const last = body.messages?.at(-1)?.content;
    return json({
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [{
        index: 0,
        message: { role: "assistant", content: `echo: ${last}` },
        finish_reason: "stop",
      }],
      usage: USAGE,
    });
  }
  if (url.startsWith("http://claude.test/v1/messages")) {
    if (body.stream) {
      const ev = (type: string, data: Record<string, unknown>) =>
        `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
      return new Response(
        enc.encode(
          ev("message_start", {
            message: {
              id: "msg_1",
              model: "claude-x",
              usage: { input_tokens: 9, output_tokens: 1 },
            },
          }) +
            ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
            ev("content_block_delta", {
              index: 0,
              delta: { type: "text_delta", text: "Hi there" },
            }) +
            ev("content_block_stop", { index: 0 }) +
            ev("message_delta", {
              delta: { stop_reason: "end_turn" },
              usage: { output_tokens: 3 },
            }) +
            ev("message_stop", {}),
        ),
        { headers: { "content-type": "text/event-stream" } },
      );
    }
    return json({
      id: "msg_1",
      type: "message",
      role: "assistant",
      model: "claude-x",
      content: [{ type: "text", text: "Hi there" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 9, output_tokens: 3 },
    });
  }
  return json({ error: { message: `no route for ${url}` } }, 404);
};

export interface TestGateway {
  request(path: string, init?: RequestInit): Promise<Response>;
  readonly runtime: Runtime;
  readonly logs: string[];
  /** Upstream calls made. */
  readonly upstream: Recorded[];
  /** Every telemetry event, in order. */
  readonly events: TelemetryEvent[];
}

export function gateway(opts: {
  stages?: Stage[];
  config?: string;
  handler?: Handler;
  clock?: Clock;
  schedule?: Schedule;
} = {}): TestGateway {
  const { config } = parseConfigText(opts.config ?? CONFIG, () => undefined, "pipeline.yaml");
  const logs: string[] = [];
  const { fetch, requests } = recordingFetch(opts.handler ?? UPSTREAM);
  const runtime = buildRuntime(config, 1, {
    fetch,
    random: () => 0,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
    write: (line) => logs.push(line),
    stages: () => opts.stages ?? [],
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.schedule ? { schedule: opts.schedule } : {}),
  });
  const events: TelemetryEvent[] = [];
  runtime.events.subscribe((e) => events.push(e));
  const app = createApp({ runtime: () => runtime, isReady: () => true });
  return {
    request: async (path, init) => await app.request(path, init),
    runtime,
    logs,
    upstream: requests,
    events,
  };
}

/** A JSON POST. */
export function post(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

/** One request per route the pipeline serves, with what a client sends there. */
export const ROUTES: readonly { name: string; path: string; body: Record<string, unknown> }[] = [
  {
    name: "chat",
    path: "/v1/chat/completions",
    body: { model: "up/gpt-up", messages: [{ role: "user", content: "hi" }] },
  },
  {
    name: "messages (translated)",
    path: "/v1/messages",
    body: { model: "up/gpt-up", max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
  },
  {
    name: "messages (same schema)",
    path: "/v1/messages",
    body: { model: "claude/claude-x", max_tokens: 16, messages: [{ role: "user", content: "hi" }] },
  },
  {
    name: "embeddings",
    path: "/v1/embeddings",
    body: { model: "up/text-embed", input: "hi" },
  },
  {
    name: "passthrough",
    path: "/native/up/chat/completions",
    body: { model: "gpt-up", messages: [{ role: "user", content: "hi" }] },
  },
];

/** The request lines logged so far. */
export function requestLines(logs: string[]): Record<string, unknown>[] {
  return logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
}
