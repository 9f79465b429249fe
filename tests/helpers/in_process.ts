/**
 * The gateway in this process: the real app and Runtime built from a YAML config, served
 * on a free localhost port (SDKs need a URL), with the real `fetch` towards upstreams.
 * Faster than a daemon subprocess, and the Runtime is at hand for assertions.
 * @module
 */
import { type Config, parseConfigText } from "../../src/config/mod.ts";
import { breakerTiming, createMemoryBreakerStore } from "../../src/breaker/mod.ts";
import { createRoutingState } from "../../src/routing/mod.ts";
import { buildRuntime, type Runtime } from "../../src/runtime.ts";
import { createApp } from "../../src/server/app.ts";

export interface InProcessGateway {
  /** `http://127.0.0.1:<port>` + `path`. */
  url(path: string): string;
  readonly runtime: Runtime;
  /** Log lines the Runtime wrote. */
  readonly logs: string[];
  close(): Promise<void>;
}

/**
 * Serve a YAML config (env lookups answered from `env`), or a config already loaded (the
 * embedded default), until `close()`.
 */
export function startGateway(
  source: string | Config,
  env: Readonly<Record<string, string>> = {},
): InProcessGateway {
  const config = typeof source === "string"
    ? parseConfigText(source, (name) => env[name], "in-process.yaml").config
    : source;
  const logs: string[] = [];
  const runtime = buildRuntime(config, 1, {
    fetch: globalThis.fetch,
    random: Math.random,
    routing: createRoutingState(),
    breakerStore: createMemoryBreakerStore(breakerTiming(config.features.circuit_breaker)),
    write: (line) => logs.push(line),
  });
  const app = createApp({ runtime: () => runtime, isReady: () => true });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req, info) => app.fetch(req, { remoteAddr: info.remoteAddr }),
  );
  return {
    url: (path) => `http://127.0.0.1:${server.addr.port}${path}`,
    runtime,
    logs,
    close: () => server.shutdown(),
  };
}

/** A localhost port nothing listens on (connections to it are refused). */
export function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
