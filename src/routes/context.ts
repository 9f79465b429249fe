import type { Runtime } from "../runtime.ts";
import type { AttemptRecord } from "../routing/mod.ts";
import type { OpenAIUsage } from "../schema/openai.ts";
import type { RequestDeadlines } from "../server/middleware/timeouts.ts";

/** Per-request data shared between middleware and routes (data only, never callbacks). */
export interface RequestVars {
  requestId: string;
  runtime: Runtime;
  /** Filled by the route for the access log. */
  provider?: string;
  model?: string;
  stream?: boolean;
  /** Log when the body has been sent (usage is read off passthrough bodies on the way). */
  deferLog?: boolean;
  usage?: OpenAIUsage;
  /** Time spent waiting on upstreams until the response started, ms (for overhead-ms). */
  upstreamMs?: number;
  /** Set when anything but one clean attempt happened. */
  attempts?: readonly AttemptRecord[];
  /** Which error envelope the route speaks. */
  errorFormat?: "openai" | "anthropic" | "gemini" | "bedrock" | "plain";
  /** `server.read_timeout`/`write_timeout` of this request; absent when neither is set. */
  deadlines?: RequestDeadlines;
  /** Which of them cut this request, for the access log. */
  timedOut?: "read_timeout" | "write_timeout";
}

export interface AppEnv {
  Variables: RequestVars;
  Bindings: { remoteAddr?: Deno.Addr };
}
