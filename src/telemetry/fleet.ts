/**
 * The fleet on one Redis: every sidecar writes a small heartbeat (its name, config
 * generation and hash, provider breaker states and today's rollup) every
 * `telemetry.fleet.interval`, and any sidecar's `/status` reads all of them back
 * (llm-proxy's "sidecars write rollups, one dashboard reads them", without the service).
 *
 * Layout: `pilotfish:fleet:member:<name>` holds the JSON (expires after three intervals),
 * and the sorted set `pilotfish:fleet` indexes names by heartbeat time, so reading is one
 * ZRANGEBYSCORE + one MGET (no SCAN). Redis being away only stalls the fleet view.
 * @module
 */
import type { RedisLink } from "../state/redis_link.ts";
import { openRedisLink } from "../state/redis_pool.ts";
import type { Logger } from "./logger.ts";

const INDEX = "pilotfish:fleet";
const MEMBER = "pilotfish:fleet:member:";

/** One sidecar's heartbeat, as stored. */
export interface FleetMember {
  readonly name: string;
  /** Epoch ms of the heartbeat. */
  readonly at: number;
  readonly [field: string]: unknown;
}

export interface Fleet {
  /** Every sidecar seen within three intervals (this one included), by name. */
  members(): Promise<FleetMember[]>;
  /** Whether the link to Redis is up. */
  connected(): boolean;
  close(): Promise<void>;
}

export interface FleetOptions {
  readonly url: string;
  readonly name: string;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly now: () => number;
  /** This sidecar's heartbeat body. */
  readonly beat: () => Record<string, unknown>;
}

export function createFleet(opts: FleetOptions): Fleet {
  const link: RedisLink = openRedisLink({ url: opts.url, name: "fleet", logger: opts.logger });
  const ttl = opts.intervalMs * 3;
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const publish = async () => {
    if (!link.ready()) return;
    const at = opts.now();
    const body = JSON.stringify({ ...opts.beat(), name: opts.name, at });
    await link.command(["SET", MEMBER + opts.name, body, "PX", String(ttl)]);
    await link.command(["ZADD", INDEX, String(at), opts.name]);
    await link.command(["ZREMRANGEBYSCORE", INDEX, "-inf", String(at - ttl)]);
  };
  const loop = () => {
    if (closed) return;
    publish().catch((error) => opts.logger.debug("fleet heartbeat failed", { error }));
    timer = setTimeout(loop, opts.intervalMs);
  };
  // First beat as soon as the link is up, then on the interval.
  const stop = link.onStateChange((ready) => {
    if (ready) publish().catch(() => {});
  });
  timer = setTimeout(loop, opts.intervalMs);

  return {
    connected: () => link.ready(),
    async members() {
      if (!link.ready()) return [];
      await publish();
      const names = await link.command([
        "ZRANGEBYSCORE",
        INDEX,
        String(opts.now() - ttl),
        "+inf",
      ]);
      if (!Array.isArray(names) || names.length === 0) return [];
      const bodies = await link.command(["MGET", ...names.map((n) => MEMBER + String(n))]);
      const out: FleetMember[] = [];
      for (const b of Array.isArray(bodies) ? bodies : []) {
        if (typeof b !== "string") continue;
        try {
          out.push(JSON.parse(b) as FleetMember);
        } catch {
          // A member written by something else: skipped.
        }
      }
      return out.sort((a, b) => a.name.localeCompare(b.name));
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      stop();
      await link.close();
    },
  };
}
