import type { Runtime } from "../runtime.ts";
import type { AttemptRecord } from "../routing/mod.ts";
import type { OpenAIUsage } from "../schema/openai.ts";

/** Per-request data shared between middleware and routes (data only, never callbacks). */
export interface RequestVars {
  requestId: string;
  runtime: Runtime;
  /** Filled by the route for the access log. */
  provider?: string;
  model?: string;
  stream?: boolean;
  usage?: OpenAIUsage;
  /** Set when anything but one clean attempt happened. */
  attempts?: readonly AttemptRecord[];
  /** Which error envelope the route speaks. */
  errorFormat?: "openai" | "anthropic" | "gemini" | "plain";
}

export interface AppEnv {
  Variables: RequestVars;
  Bindings: { remoteAddr?: Deno.Addr };
}
