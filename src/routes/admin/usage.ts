import { allow } from "../../server/middleware/error_handler.ts";
import { parseIsoTime } from "../../iso_time.ts";
import type { Hono } from "hono";
import { GatewayError } from "../../errors.ts";
import type { Control } from "../../pipeline/control.ts";
import { type Period, PERIODS } from "../../usage/mod.ts";
import type { AppEnv } from "../context.ts";
import { send } from "../../server/whole.ts";

/**
 * `GET /api/v1/usage`: llm-gateway's totals (`total_requests`, `total_tokens`, `total_cost`,
 * `cache_hits`, `cache_misses`), then token details and breakdowns by app key, user,
 * provider, model and feature, and per-bucket totals. `since` / `until` (ISO 8601 or Unix
 * seconds) bound the buckets, `period` (`hour`, the default, or `day`) picks their size; a
 * bucket counts when it starts in [since rounded down to its period, until); the answer's
 * `since` and `until` are the first bucket's start and the last one's end.
 */
export function usageRoutes(admin: Hono<AppEnv>, control: Control): void {
  admin.get("/usage", async (c) => {
    const rt = control.state().runtime;
    const period = c.req.query("period") ?? "hour";
    if (period !== "hour" && period !== "day") {
      throw new GatewayError(
        "invalid_request",
        `"period" must be "hour" or "day", got "${period}"`,
      );
    }
    const size = PERIODS[period as Period];
    const now = rt.now();
    const since = parseInstant(c.req.query("since"), "since") ?? 0;
    const from = Math.floor(since / size) * size;
    // Without `until`: through the current bucket, or `since`'s own when it is later (an
    // empty answer for a window that has not started, not a 400 for a bound never sent).
    const asked = parseInstant(c.req.query("until"), "until");
    if (asked !== null && asked <= since) {
      throw new GatewayError("invalid_request", `"until" must be after "since"`);
    }
    // A bucket that starts before `until` is counted whole: the answer says where it ends,
    // as it says where the first one starts.
    const until = asked !== null
      ? Math.ceil(asked / size) * size
      : Math.max(Math.floor(now / size) * size, from) + size;
    try {
      return send(
        c,
        "json",
        await rt.usage.report({
          period: period as Period,
          since: from,
          until,
        }),
      );
    } catch (err) {
      throw new GatewayError("unavailable", "The usage store cannot be read right now", {
        cause: err,
      });
    }
  });
  admin.all("/usage", allow("GET"));
}

/** ISO 8601 (`2026-11-30`, `2026-11-30T14:00:00Z`) or Unix seconds -> ms; absent -> null. */
export function parseInstant(text: string | undefined, name: string): number | null {
  if (text === undefined || text === "") return null;
  const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : parseIsoTime(text);
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15) {
    throw new GatewayError(
      "invalid_request",
      `"${name}" must be an ISO 8601 time (e.g. "2026-11-30T14:00:00Z") or Unix seconds, got "${text}"`,
    );
  }
  return ms;
}
