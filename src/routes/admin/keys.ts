import { allow } from "../../server/middleware/error_handler.ts";
/**
 * App keys over the admin API: `GET/POST /api/v1/keys`, `GET/PATCH/DELETE
 * /api/v1/keys/{id}`, `POST /api/v1/keys/{id}/rotate`, `GET /api/v1/keys/{id}/usage`, and
 * Butter's `/v1/app-keys*` as aliases behind the same admin token (Butter serves them
 * without auth; we do not). A key's value appears once, in the answer that created or
 * rotated it; DELETE revokes (the record and its counters stay, for audit).
 * @module
 */
import { type Context, Hono } from "hono";
import { GatewayError } from "../../errors.ts";
import { StateUnavailable } from "../../state/store.ts";
import type { Control } from "../../pipeline/control.ts";
import {
  type KeyRecord,
  type KeyService,
  NO_KEY_LIMITS,
  parseCreate,
  parsePatch,
} from "../../keys/mod.ts";
import type { AppEnv } from "../context.ts";
import { requireAdmin } from "./auth.ts";
import { send } from "../../server/whole.ts";
import { requestText } from "../body.ts";

/** A key as the API shows it: never its value or hash. */
export function keyView(rec: KeyRecord, now: number): Record<string, unknown> {
  // A time past what a Date holds (a record an older version let through) reads as none
  // rather than failing every listing.
  const iso = (ms: number | null) =>
    ms === null || !(Math.abs(ms) <= 8.64e15) ? null : new Date(ms).toISOString();
  return {
    id: rec.id,
    name: rec.name,
    owner: rec.owner,
    hint: rec.hint,
    source: rec.source,
    status: rec.revoked_at !== null
      ? "revoked"
      : rec.expires_at !== null && rec.expires_at <= now
      ? "expired"
      : "active",
    created_at: rec.source === "config" ? null : iso(rec.created_at),
    expires_at: iso(rec.expires_at),
    revoked_at: iso(rec.revoked_at),
    allowed_models: rec.allowed_models,
    allowed_providers: rec.allowed_providers,
    budget: rec.budget,
    limits: rec.limits ?? NO_KEY_LIMITS,
  };
}

function keysOf(c: Context<AppEnv>, control: Control): { keys: KeyService; now: number } {
  const rt = control.state().runtime;
  if (rt.keys === null) {
    throw new GatewayError(
      "invalid_request",
      "App keys are off: set app_keys.enabled: true to manage keys",
      { status: 409 },
    );
  }
  c.header("cache-control", "no-store");
  return { keys: rt.keys, now: rt.now() };
}

/** The providers a key's `allowed_providers` may name: the running config's. */
function providersOf(control: Control): ReadonlySet<string> {
  return new Set(Object.keys(control.state().runtime.config.providers));
}

async function jsonBody(c: Context<AppEnv>, optional: boolean): Promise<unknown> {
  const text = await requestText(c);
  if (text.trim() === "") {
    if (optional) return {};
    throw new GatewayError("invalid_request", "Body must be a JSON object");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    const why = err instanceof SyntaxError ? ` (${err.message})` : "";
    throw new GatewayError(
      "invalid_request",
      `Body must be a JSON object; it is not valid JSON${why}`,
      { param: "body" },
    );
  }
  // An array or null is JSON, but no object of fields: never read as an empty body.
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new GatewayError("invalid_request", "Body must be a JSON object");
  }
  return body;
}

type Handler = (c: Context<AppEnv>) => Promise<Response>;

/** A store that cannot answer (Redis away) is a 503 the caller may retry, not a 500. */
const guarded = (h: Handler): Handler => async (c) => {
  try {
    return await h(c);
  } catch (err) {
    if (!(err instanceof StateUnavailable)) throw err;
    throw new GatewayError("unavailable", "The app key store is unavailable: try again shortly", {
      cause: err,
      headers: { "retry-after": "1" },
    });
  }
};

/**
 * The routes, with `:id` naming a key by id (or, on Butter's aliases, by value too). The
 * aliases answer in Butter's terms where its clients read them: `label` beside `name`, a
 * rotation as `{old, new}` (201, the new key's value in `new.key`), a revocation as 204.
 */
function keyRoutes(router: Hono<AppEnv>, control: Control, butter: boolean): void {
  const idOf = async (c: Context<AppEnv>, keys: KeyService) => {
    const ref = c.req.param("id") ?? "";
    return butter ? (await keys.resolveRef(ref)).id : ref;
  };
  const view = (rec: KeyRecord, now: number) =>
    butter ? { ...keyView(rec, now), label: rec.name } : keyView(rec, now);

  router.get(
    "/",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      const data = (await keys.list()).map((r) => view(r, now));
      return butter ? send(c, "json", data) : send(c, "json", { object: "list", data });
    }),
  );
  router.post(
    "/",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      const { record, key } = await keys.create(
        parseCreate(await jsonBody(c, true), providersOf(control)),
      );
      return send(c, "json", { ...view(record, now), key }, 201);
    }),
  );
  router.get(
    "/:id/usage",
    guarded(async (c) => {
      const { keys } = keysOf(c, control);
      return send(c, "json", await keys.usage(await idOf(c, keys)));
    }),
  );
  router.post(
    "/:id/rotate",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      const id = await idOf(c, keys);
      if (!butter) {
        const { record, key } = await keys.rotate(id);
        return send(c, "json", { ...view(record, now), key });
      }
      // Butter's body may name the new key's label.
      const body = await jsonBody(c, true) as { label?: unknown };
      const before = await keys.get(id);
      let { record, key } = await keys.rotate(id);
      if (typeof body.label === "string" && body.label !== "") {
        record = await keys.update(id, parsePatch({ name: body.label }));
      }
      // The old value as it now stands: revoked at the rotation (the record lives on as `new`).
      const old = view({ ...before, revoked_at: now }, now);
      return send(c, "json", { old, new: { ...view(record, now), key } }, 201);
    }),
  );
  router.get(
    "/:id",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      return send(c, "json", view(await keys.get(await idOf(c, keys)), now));
    }),
  );
  router.patch(
    "/:id",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      const patch = parsePatch(await jsonBody(c, false), providersOf(control));
      return send(c, "json", view(await keys.update(await idOf(c, keys), patch), now));
    }),
  );
  router.delete(
    "/:id",
    guarded(async (c) => {
      const { keys, now } = keysOf(c, control);
      const revoked = await keys.revoke(await idOf(c, keys));
      return butter ? c.body(null, 204) : send(c, "json", view(revoked, now));
    }),
  );
  router.all("/", allow("GET, POST"));
  router.all("/:id/usage", allow("GET"));
  router.all("/:id/rotate", allow("POST"));
  router.all("/:id", allow("GET, PATCH, DELETE"));
}

/** `/api/v1/keys*` on the admin router (auth already done there). */
export function keysRoutes(admin: Hono<AppEnv>, control: Control): void {
  const keys = new Hono<AppEnv>();
  keyRoutes(keys, control, false);
  admin.route("/keys", keys);
}

/** Butter's `/v1/app-keys*`, behind the admin token. */
export function mountButterKeyAliases(app: Hono<AppEnv>, control: Control): void {
  const aliases = new Hono<AppEnv>();
  aliases.use(requireAdmin);
  keyRoutes(aliases, control, true);
  app.route("/v1/app-keys", aliases);
}
