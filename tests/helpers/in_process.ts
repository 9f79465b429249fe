/**
 * The gateway in this process: the real app and Runtime built from a YAML config, with the
 * real `fetch` towards upstreams. `request()` calls the app directly (no socket); `url()`
 * serves it on a free localhost port, opened on first use, for SDKs that need a URL.
 * Faster than a daemon subprocess, and the Runtime, its log lines and its clock are at hand.
 * Tests that need the real process (listeners, the socket, signals, permissions, hot reload,
 * startup errors) use tests/integration/daemon.ts instead.
 * @module
 */
import { type Config, parseConfigText } from "../../src/config/mod.ts";
import {
  type BreakerStore,
  breakerTiming,
  createMemoryBreakerStore,
} from "../../src/breaker/mod.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { closeLimits } from "../../src/limits/mod.ts";
import { buildRuntime, type Runtime, secretsOf } from "../../src/runtime.ts";
import type { Stage } from "../../src/pipeline/stages.ts";
import { createStateResources } from "../../src/usage/mod.ts";
import { createApp } from "../../src/server/app.ts";
import { createHttp1Client } from "../../src/net/http1.ts";
import type { Schedule } from "../../src/pipeline/stages.ts";
import type { ResponsesStore } from "../../src/responses_store/mod.ts";
import { createLogger, createRedactor, type Logger } from "../../src/telemetry/mod.ts";

export interface InProcessGateway {
  /** `http://127.0.0.1:<port>` + `path`; the first call starts serving on a free port. */
  url(path: string): string;
  /** The app answers `path` directly, as `fetch(url(path), init)` would over TCP. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /**
   * As `request`, with the URL Deno.serve gives a request on a Unix socket
   * (`http+unix://<Host>/…`; Host `pilotfish` unless `host` says otherwise).
   */
  requestOverSocket(path: string, init?: RequestInit, host?: string): Promise<Response>;
  readonly runtime: Runtime;
  /** Log lines (each ending in "\n") the Runtime and the breaker store wrote, in order. */
  readonly logs: string[];
  /** Every log line so far, as one text (what a daemon's `logs()` returns). */
  logText(): string;
  /** Resolves once a log line containing `text` is written; rejects after `timeoutMs`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  /** Stops serving (if it did) and closes the breaker store. */
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** The Runtime's wall clock (breaker cooldowns, key cooldowns, deadlines): see `testClock`. */
  readonly now?: () => number;
  /**
   * The breaker's state store (e.g. Redis, shared by several gateways); by default the
   * memory store. The gateway closes it on `close()`.
   */
  readonly breakerStore?: (config: Config, logger: Logger) => BreakerStore;
  /** Extra stages after the built-in ones (e.g. one that sets `ex.cost` or `ex.principal`). */
  readonly stages?: (config: Config) => readonly Stage[];
  /** The Runtime's timers (stage budgets, the stream gate): see `manualSchedule`. */
  readonly schedule?: Schedule;
  /** The Responses API store (e.g. on Redis, shared by several gateways); memory by default. */
  readonly responses?: ResponsesStore;
  /** Upstream calls go here instead of the daemon's client (a stand-in upstream). */
  readonly fetch?: typeof fetch;
}

/**
 * Serve a YAML config (env lookups answered from `env`), or a config already loaded (the
 * embedded default), until `close()`.
 */
export function startGateway(
  source: string | Config,
  env: Readonly<Record<string, string>> = {},
  opts: GatewayOptions = {},
): InProcessGateway {
  const config = typeof source === "string"
    ? parseConfigText(source, (name) => env[name], "in-process.yaml").config
    : source;
  const logs: string[] = [];
  const waiters = new Set<{ needle: string; resolve: () => void }>();
  const write = (line: string) => {
    logs.push(line);
    for (const w of waiters) {
      if (line.includes(w.needle)) {
        waiters.delete(w);
        w.resolve();
      }
    }
  };
  const breakerStore = opts.breakerStore
    ? opts.breakerStore(
      config,
      createLogger({
        level: config.logging.level,
        format: config.logging.format,
        redact: createRedactor(secretsOf(config)),
        write,
      }),
    )
    : createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker));
  const resources = createStateResources({ now: opts.now ?? Date.now });
  // The daemon's upstream client (src/main.ts), so every in-process test exercises it.
  const upstream = createHttp1Client();
  const routing = createRoutingState(opts.now);
  const runtime = buildRuntime(config, 1, {
    resources,
    fetch: opts.fetch ?? upstream.fetch,
    random: Math.random,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.schedule ? { schedule: opts.schedule } : {}),
    ...(opts.responses ? { responses: opts.responses } : {}),
    routing,
    breakerStore,
    write,
    ...(opts.stages ? { stages: opts.stages } : {}),
  });
  const app = createApp({ runtime: () => runtime, isReady: () => true });
  let server: Deno.HttpServer<Deno.NetAddr> | null = null;
  const logText = () => logs.join("");
  return {
    url(path) {
      server ??= Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
      );
      return `http://127.0.0.1:${server.addr.port}${path}`;
    },
    // What a client on localhost sends, minus the connection: no remote address.
    request: async (path, init) => await app.fetch(new Request(`http://localhost${path}`, init)),
    requestOverSocket: async (path, init, host = "pilotfish") =>
      await app.fetch(new Request(`http+unix://${host}${path}`, init)),
    runtime,
    logs,
    logText,
    waitForLog(needle, timeoutMs = 10_000) {
      if (logText().includes(needle)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const waiter = {
          needle,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`log "${needle}" not seen; logs:\n${logText()}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async close() {
      await server?.shutdown();
      // What the generation's stages hold (e.g. the rate limiter's Redis link).
      runtime.retire();
      upstream.close();
      await runtime.dispose();
      await closeLimits(routing);
      await breakerStore.close();
      await resources.close();
    },
  };
}

/** A wall clock for `GatewayOptions.now`: real time, moved forward on demand. */
export interface TestClock {
  now(): number;
  /** Jump `ms` ahead: a cooldown or a window passes without waiting for it. */
  advance(ms: number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance(ms) {
      offset += ms;
    },
  };
}

/** A localhost port nothing listens on (connections to it are refused). */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
