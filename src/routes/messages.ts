import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { AppEnv } from "./context.ts";

/** `POST /v1/messages`: the Anthropic Messages API as a unified entry point. */
export function messages(c: Context<AppEnv>): Response {
  c.set("errorFormat", "anthropic");
  throw new GatewayError("not_implemented", "POST /v1/messages is being built");
}
