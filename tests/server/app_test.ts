import assert from "node:assert/strict";
import type { SmartRouter } from "hono/router/smart-router";
import { createApp } from "../../src/server/app.ts";

Deno.test("the route table stays within what Hono's RegExpRouter takes", () => {
  // Two patterns that can match the same path (a static segment next to `:param`) make
  // Hono's SmartRouter fall back to its TrieRouter, several µs slower on every request.
  const app = createApp({
    runtime: () => {
      throw new Error("not needed to match routes");
    },
    isReady: () => true,
  });
  const router = app.router as SmartRouter<unknown>;
  router.match("POST", "/v1/chat/completions");
  assert.equal(router.activeRouter.name, "RegExpRouter");
});
