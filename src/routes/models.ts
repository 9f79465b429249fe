import type { Context } from "hono";
import type { Runtime } from "../runtime.ts";
import type { AppEnv } from "./context.ts";

interface ModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

/** `GET /v1/models`: every `provider/model` a client can ask for, plus aliases and routed models. */
export function listModels(c: Context<AppEnv>): Response {
  c.set("errorFormat", "openai");
  return c.json({ object: "list", data: modelEntries(c.get("runtime")) });
}

const cache = new WeakMap<Runtime, ModelEntry[]>();

/** Computed once per config generation. */
function modelEntries(rt: Runtime): ModelEntry[] {
  let entries = cache.get(rt);
  if (entries) return entries;
  entries = [];
  const seen = new Set<string>();
  const add = (id: string, owner: string) => {
    if (seen.has(id)) return;
    seen.add(id);
    entries!.push({ id, object: "model", created: 0, owned_by: owner });
  };
  for (const adapter of rt.adapters.values()) {
    for (const m of adapter.models()) add(`${adapter.name}/${m}`, adapter.name);
  }
  for (const [model, route] of Object.entries(rt.config.routing.models)) {
    add(model, route.providers[0] ?? "pilotfish");
  }
  for (const [alias, target] of Object.entries(rt.config.routing.aliases)) {
    add(alias, target.split("/")[0] ?? "pilotfish");
  }
  cache.set(rt, entries);
  return entries;
}
