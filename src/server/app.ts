import { Hono, type MiddlewareHandler } from "hono";
import {
  type AppEnv,
  cancelResponse,
  chatCompletions,
  countTokens,
  deleteResponse,
  embeddings,
  getModel,
  getResponse,
  health,
  healthz,
  listModels,
  messages,
  modelsFormat,
  nativePassthrough,
  ready,
  responseInputItems,
  responses,
} from "../routes/mod.ts";
import type { Runtime } from "../runtime.ts";
import { NATIVE_FAMILIES } from "../providers/native_routes.ts";
import { type Control, createControl } from "../pipeline/control.ts";
import { mountAdmin } from "../routes/admin/mod.ts";
import { appKeyGate } from "../keys/mod.ts";
import { allow, renderError, renderNotFound } from "./middleware/error_handler.ts";
import { requestContext } from "./middleware/request_context.ts";
import { corsMiddleware } from "./middleware/cors.ts";
import { hostGuard } from "./middleware/host_guard.ts";
import { browserGuard } from "./middleware/browser_guard.ts";
import { timeouts } from "./middleware/timeouts.ts";
import { metricsEndpoint } from "../routes/metrics.ts";
import { statusJson, statusPage } from "../routes/status/mod.ts";

export interface AppDeps {
  /** The current config generation; swapped on hot reload. */
  readonly runtime: () => Runtime;
  /** True once config and listeners are up. */
  readonly isReady: () => boolean;
  /**
   * Operations on the running gateway (reload, breaker reset, state): what the admin API
   * exposes as routes. The daemon passes the one `src/main.ts` builds (it owns reload).
   */
  readonly control?: Control;
}

/** Build the HTTP app. No I/O here: every collaborator comes in through `deps`. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(requestContext(deps.runtime));
  // server.read_timeout/write_timeout run from here, for every route.
  app.use(timeouts());
  app.use(hostGuard());
  // Before CORS and every route: a page in a browser may not spend the keys (cross-site
  // POSTs, DNS rebinding); a preflight is a safe method and goes on to CORS.
  app.use(browserGuard());
  // After the request context (its config, its log line), before every route: a preflight
  // is answered here and never reaches a passthrough upstream.
  app.use(corsMiddleware());

  app.post("/v1/chat/completions", chatCompletions);
  app.post("/v1/messages", messages);
  app.post("/v1/embeddings", embeddings);
  app.post("/v1/messages/count_tokens", countTokens("messages"));
  app.post("/v1/responses", responses);
  // `/v1/responses/input_tokens` is a route, never a response id. It is told apart inside
  // the one `/v1/responses/:id` pattern: two patterns that both match it would make Hono
  // fall back from its RegExpRouter to the TrieRouter, a few us more on every request.
  const inputTokens = countTokens("responses");
  const postAllow = allow("POST");
  const responseItem = allow("GET, DELETE");
  app.post(
    "/v1/responses/:id",
    (c) => c.req.param("id") === "input_tokens" ? inputTokens(c) : responseItem(c),
  );
  const notInputTokens: MiddlewareHandler<AppEnv> = (c, next) =>
    c.req.param("id") === "input_tokens" ? Promise.resolve(postAllow(c)) : next();
  app.get("/v1/responses/:id", notInputTokens, appKeyGate, getResponse);
  app.delete("/v1/responses/:id", notInputTokens, appKeyGate, deleteResponse);
  app.get("/v1/responses/:id/input_items", appKeyGate, responseInputItems);
  app.post("/v1/responses/:id/cancel", appKeyGate, cancelResponse);
  app.get("/v1/models", modelsFormat, appKeyGate, listModels);
  app.get("/v1/models/*", modelsFormat, appKeyGate, getModel);
  app.get("/healthz", healthz);
  app.get("/ready", ready(deps.isReady));
  app.get("/health", health);
  app.use(metricsEndpoint());
  app.get("/status", statusPage);
  // Before the admin API: open while no admin token is set (the admin API is 403 then).
  app.get("/api/v1/status", statusJson);
  app.all("/api/v1/status", allow("GET"));
  mountAdmin(app, deps.control ?? createControl({ current: deps.runtime }));

  // Provider-native passthrough: bytes in, bytes out (the families are the providers' own).
  for (const family of NATIVE_FAMILIES) app.all(`${family.prefix}/*`, nativePassthrough(family));
  app.all("/native/:provider/*", nativePassthrough(null));

  // Known paths with the wrong method: 405 with Allow, not a misleading 404.
  app.all("/v1/chat/completions", allow("POST"));
  app.all("/v1/models", modelsFormat, allow("GET"));
  app.all("/v1/models/*", modelsFormat, allow("GET"));
  app.all("/v1/messages", allow("POST"));
  app.all("/v1/embeddings", allow("POST"));
  app.all("/v1/messages/count_tokens", allow("POST"));
  app.all("/v1/responses", allow("POST"));
  app.all(
    "/v1/responses/:id",
    (c) => c.req.param("id") === "input_tokens" ? postAllow(c) : responseItem(c),
  );
  app.all("/v1/responses/:id/input_items", allow("GET"));
  app.all("/v1/responses/:id/cancel", postAllow);
  for (const path of ["/healthz", "/ready", "/health", "/status"]) {
    app.all(path, allow("GET"));
  }

  app.notFound(renderNotFound);
  app.onError(renderError);
  return app;
}
