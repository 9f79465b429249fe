/**
 * The admin control object: what an operator can do to a running gateway, independent of
 * HTTP. The daemon builds it in src/main.ts (it owns reload); tests build it in-process.
 * The admin API (a later issue) adds routes over it, not plumbing.
 * @module
 */
import type { BreakerStore } from "../breaker/mod.ts";
import type { RoutingState } from "../routing/mod.ts";
import type { Runtime } from "../runtime.ts";
import type { BackendHealth, UsageRow } from "../limits/mod.ts";

export interface ReloadResult {
  readonly ok: boolean;
  /** Why the new config was refused (the running one stays). */
  readonly problems?: readonly string[];
  /** The generation serving after the call. */
  readonly generation: number;
  /** Keys the new file changed that take effect only on a restart (the rest is applied). */
  readonly restart_required?: readonly string[];
}

/** Read access to what the gateway has learned and holds. */
export interface ControlState {
  /** The generation serving new requests. */
  readonly runtime: Runtime;
  /** Key cooldowns, latency, reachability (shared by every generation). */
  readonly routing: RoutingState;
  /** The breaker's state store (memory or Redis). */
  readonly breaker: BreakerStore;
  /** Rate limits: the backend's state and current usage per counter; null when none is set. */
  readonly limits: { readonly health: BackendHealth; readonly usage: readonly UsageRow[] } | null;
}

export interface Control {
  /** Load the config file again; validated whole, swapped only when valid. */
  reload(): Promise<ReloadResult>;
  /** Close one breaker key (`provider` or `provider:model`), or every key seen. */
  breakerReset(key?: string): Promise<{ readonly reset: readonly string[] }>;
  state(): ControlState;
}

export interface ControlDeps {
  readonly current: () => Runtime;
  /** The daemon's reload; absent when the gateway has no config file to read again. */
  readonly reload?: () => Promise<ReloadResult>;
}

export function createControl(deps: ControlDeps): Control {
  return {
    reload() {
      if (deps.reload) return deps.reload();
      return Promise.resolve({
        ok: false,
        problems: [
          "This gateway runs on a config that was not read from a file: nothing to reload",
        ],
        generation: deps.current().generation,
      });
    },
    async breakerReset(key) {
      const rt = deps.current();
      const reset = await rt.breaker.reset(key === undefined || key === "" ? undefined : key);
      rt.logger.info("circuit breaker reset", { keys: reset });
      return { reset };
    },
    state() {
      const rt = deps.current();
      const limits = rt.limits ? { health: rt.limits.health(), usage: rt.limits.usage() } : null;
      return { runtime: rt, routing: rt.routing, breaker: rt.breaker.store, limits };
    },
  };
}
