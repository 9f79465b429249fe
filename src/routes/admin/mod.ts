/**
 * The admin API under `/api/v1/*`: bearer `server.admin_token`, every route 403 while it is
 * unset, on the socket and TCP alike. Routes are thin: they call the control object
 * (src/pipeline/control.ts) and render its answer. Each feature registers its routes in its
 * own module under this folder and adds one line to `mountAdmin`.
 * @module
 */
import { Hono } from "hono";
import type { AppEnv } from "../context.ts";
import type { Control } from "../../pipeline/control.ts";
import { requireAdmin } from "./auth.ts";
import { operationsRoutes } from "./operations.ts";
import { keysRoutes, mountButterKeyAliases } from "./keys.ts";
import { providersStatusRoutes } from "./providers_status.ts";
import { usageRoutes } from "./usage.ts";
import { cacheRoutes } from "./cache.ts";

/** Mount every admin route on `app` (under `/api/v1`). */
export function mountAdmin(app: Hono<AppEnv>, control: Control): void {
  const admin = new Hono<AppEnv>();
  admin.use(requireAdmin);
  operationsRoutes(admin, control);
  keysRoutes(admin, control);
  providersStatusRoutes(admin, control);
  usageRoutes(admin, control);
  cacheRoutes(admin, control);
  app.route("/api/v1", admin);
  mountButterKeyAliases(app, control);
}

export { requireAdmin } from "./auth.ts";
