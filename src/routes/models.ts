import { GatewayError } from "../errors.ts";
import type { Context, MiddlewareHandler } from "hono";
import type { Runtime } from "../runtime.ts";
import type { AppEnv } from "./context.ts";
import { send } from "../server/whole.ts";
import { resolveModel } from "../routing/mod.ts";

interface ModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

/** How long a provider's own model list is trusted before asking again. */
const DISCOVERY_TTL_MS = 10 * 60_000;

/**
 * `GET /v1/models`: every `provider/model` a client can ask for (configured `models`, or
 * what the provider itself lists when none are configured), plus routed models and aliases.
 * A provider that cannot be asked in time is simply left out of its discovered part.
 */
export async function listModels(c: Context<AppEnv>): Promise<Response> {
  const anthropic = fromAnthropicClient(c);
  const rt = c.get("runtime");
  const entries = await visibleTo(c, modelEntries(rt, await discoveredModels(rt)));
  if (anthropic) return send(c, "json", anthropicPage(entries, new URL(c.req.url).searchParams));
  return send(c, "json", { object: "list", data: entries });
}

/**
 * A client that sends `anthropic-version` (every Anthropic SDK does; no OpenAI one) is
 * answered in the Anthropic Models API's shapes, its errors too (the app-key gate's
 * included: this runs before it): `client.models.list()` pages with `has_more`,
 * `first_id` and `last_id`, and reads `type`, `display_name` and `created_at`.
 */
export const modelsFormat: MiddlewareHandler<AppEnv> = async function modelsFormat(c, next) {
  c.get("exchange").errorFormat = fromAnthropicClient(c) ? "anthropic_json" : "openai_json";
  await next();
};

function fromAnthropicClient(c: Context<AppEnv>): boolean {
  return c.req.header("anthropic-version") !== undefined;
}

interface AnthropicModel {
  type: "model";
  id: string;
  display_name: string;
  created_at: string;
}

function anthropicModel(m: ModelEntry): AnthropicModel {
  return {
    type: "model",
    id: m.id,
    display_name: m.id,
    created_at: new Date(m.created * 1000).toISOString().replace(".000Z", "Z"),
  };
}

/** The Models API's page: `limit` (1-1000, default 20), `after_id` or `before_id`. */
function anthropicPage(entries: readonly ModelEntry[], query: URLSearchParams) {
  const rawLimit = query.get("limit");
  const limit = rawLimit === null ? 20 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new GatewayError("invalid_request", '"limit" must be a whole number from 1 to 1000', {
      param: "limit",
    });
  }
  const at = (param: "after_id" | "before_id"): number | null => {
    const id = query.get(param);
    if (id === null) return null;
    const i = entries.findIndex((m) => m.id === id);
    if (i < 0) throw new GatewayError("invalid_request", `No model "${id}"`, { param });
    return i;
  };
  const after = at("after_id");
  const before = at("before_id");
  let page: readonly ModelEntry[];
  let hasMore: boolean;
  if (before !== null && after === null) {
    const start = Math.max(0, before - limit);
    page = entries.slice(start, before);
    hasMore = start > 0;
  } else {
    const start = after === null ? 0 : after + 1;
    const end = Math.min(before ?? entries.length, start + limit);
    page = entries.slice(start, end);
    hasMore = end < (before ?? entries.length);
  }
  return {
    data: page.map(anthropicModel),
    has_more: hasMore,
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
  };
}

/**
 * `GET /v1/models/{id}` (the SDKs' `models.retrieve`): the entry `GET /v1/models` lists under
 * that id (`provider/model` ids hold a slash, so the rest of the path is the id), else a 404
 * naming where the list is.
 */
export async function getModel(c: Context<AppEnv>): Promise<Response> {
  const anthropic = fromAnthropicClient(c);
  const rt = c.get("runtime");
  const prefix = "/v1/models/";
  const raw = c.req.path.slice(prefix.length);
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    id = raw; // a malformed escape (`%E0`) names no model: the 404 below
  }
  const entries = await visibleTo(c, modelEntries(rt, await discoveredModels(rt)));
  const entry = entries.find((m) => m.id === id);
  if (entry === undefined) {
    // The 404 names what is configured (PRODUCT's bad-input rule), within reason.
    const shown = entries.slice(0, LISTED).map((m) => m.id);
    const more = entries.length - shown.length;
    const providers = Object.keys(rt.config.providers).join(", ") || "none";
    throw new GatewayError(
      "not_found",
      `The model "${id}" is not served here. Configured providers: ${providers}; models: ` +
        (shown.length > 0 ? shown.join(", ") : "none listed") +
        (more > 0 ? ` and ${more} more` : "") + ` (GET /v1/models lists them all)`,
      { param: "model" },
    );
  }
  return send(c, "json", anthropic ? anthropicModel(entry) : entry);
}

/**
 * The entries the caller's app key may use, by the allowlists its requests are held to (a
 * model the key would get 403 for is not listed, nor found by id); all without a key.
 */
async function visibleTo(
  c: Context<AppEnv>,
  entries: readonly ModelEntry[],
): Promise<readonly ModelEntry[]> {
  const rt = c.get("runtime");
  const keys = rt.keys;
  const id = c.get("exchange").principal.appKey;
  if (keys === null || id === undefined) return entries;
  const record = keys.peek(id) ?? await keys.get(id);
  if (record.allowed_models.length === 0 && record.allowed_providers.length === 0) return entries;
  return entries.filter((m) => {
    let targets;
    try {
      targets = resolveModel(rt.config, m.id, undefined).targets;
    } catch {
      return false;
    }
    return !("refusal" in keys.allow(record, m.id, undefined, targets));
  });
}

/** Models a 404 names at most. */
const LISTED = 20;

/** A failed discovery is retried sooner. */
const RETRY_FAILED_MS = 30_000;

interface Discovery {
  at: number;
  ttl: number;
  result: Promise<Map<string, readonly string[]>>;
}

const discoveries = new WeakMap<Runtime, Discovery>();

/**
 * One discovery per config generation and TTL, shared by concurrent callers. It runs on
 * its own timeout, not the caller's signal: one impatient client must not empty the cache.
 */
function discoveredModels(rt: Runtime): Promise<Map<string, readonly string[]>> {
  const cached = discoveries.get(rt);
  if (cached && rt.now() - cached.at < cached.ttl) return cached.result;
  const entry: Discovery = {
    at: rt.now(),
    ttl: DISCOVERY_TTL_MS,
    result: Promise.resolve(new Map()),
  };
  entry.result = (async () => {
    const out = new Map<string, readonly string[]>();
    await Promise.all(
      [...rt.adapters.values()].map(async (adapter) => {
        if (!adapter.discoverModels) return;
        try {
          out.set(adapter.name, await adapter.discoverModels(new AbortController().signal));
        } catch (err) {
          entry.ttl = RETRY_FAILED_MS;
          rt.logger.warn("model discovery failed", { provider: adapter.name, error: err });
        }
      }),
    );
    return out;
  })();
  discoveries.set(rt, entry);
  return entry.result;
}

function modelEntries(rt: Runtime, discovered: Map<string, readonly string[]>): ModelEntry[] {
  const entries: ModelEntry[] = [];
  const seen = new Set<string>();
  const add = (id: string, owner: string) => {
    if (seen.has(id)) return;
    seen.add(id);
    entries.push({ id, object: "model", created: 0, owned_by: owner });
  };
  for (const adapter of rt.adapters.values()) {
    for (const m of adapter.models()) add(`${adapter.name}/${m}`, adapter.name);
    for (const m of discovered.get(adapter.name) ?? []) add(`${adapter.name}/${m}`, adapter.name);
  }
  for (const [model, route] of Object.entries(rt.config.routing.models)) {
    add(model, route.providers[0]?.split("/")[0] ?? "pilotfish");
  }
  for (const [alias, target] of Object.entries(rt.config.routing.aliases)) {
    add(alias, target.split("/")[0] ?? "pilotfish");
  }
  return entries;
}
