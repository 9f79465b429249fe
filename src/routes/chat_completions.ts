import type { Context } from "hono";
import { GatewayError, withHeaders } from "../errors.ts";
import {
  type AttemptRecord,
  executeWithFailover,
  FailoverExhausted,
  type FailoverResult,
  resolveModel,
} from "../routing/mod.ts";
import { parseChatRequest, toOpenAIError } from "../schema/openai.ts";
import { encodeSseData, observeStream } from "../streaming/mod.ts";
import { readJsonBody } from "./body.ts";
import type { AppEnv } from "./context.ts";

const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/** `POST /v1/chat/completions`: the unified OpenAI-compatible entry point. */
export async function chatCompletions(c: Context<AppEnv>): Promise<Response> {
  c.set("errorFormat", "openai");
  const rt = c.get("runtime");
  const { body, gateway } = parseChatRequest(
    await readJsonBody(c.req.raw, rt.config.server.max_body_bytes),
  );
  const stream = body.stream === true;
  c.set("stream", stream);
  c.set("model", body.model);

  const { targets, route } = resolveModel(rt.config, body.model, gateway.provider);
  let result: FailoverResult;
  try {
    result = await executeWithFailover(
      {
        config: rt.config,
        adapters: rt.adapters,
        state: rt.routing,
        random: rt.random,
        now: rt.now,
        redact: rt.redact,
      },
      {
        requested: body.model,
        targets,
        route,
        invoke: (adapter, attempt, model) =>
          adapter.chat(
            { ...attempt, body, stream, onUsage: (usage) => c.set("usage", usage) },
            model,
          ),
        signal: c.req.raw.signal,
        clientAuthorization: clientCredential(c.req.header("authorization")),
        // x-gateway.timeout is the caller's whole budget: it bounds every attempt too.
        deadlineMs: gateway.timeout !== undefined
          ? gateway.timeout * 1000
          : rt.config.routing.failover.deadline,
        ...(gateway.timeout !== undefined ? { attemptTimeoutMs: gateway.timeout * 1000 } : {}),
      },
    );
  } catch (err) {
    if (!(err instanceof FailoverExhausted)) throw err;
    const lastAttempt = err.attempts.at(-1);
    noteAttempts(c, err.attempts, lastAttempt?.provider, lastAttempt?.model);
    throw withHeaders(err.last, { "x-pilotfish-attempts": String(err.attempts.length) });
  }

  const { outcome, target, attempts } = result;
  noteAttempts(c, attempts, target.provider, target.model);
  const headers: Record<string, string> = {
    "x-pilotfish-provider": target.provider,
    "x-pilotfish-model": target.model,
    "x-pilotfish-attempts": String(attempts.length),
  };
  if (outcome.kind === "json") {
    return new Response(outcome.body, {
      status: outcome.status,
      headers: { ...headers, "content-type": "application/json" },
    });
  }
  const body$ = observeStream(outcome.body, {
    // After the first byte there is no retry: the stream ends with an error event instead.
    renderError: (err) => {
      const ge = err instanceof GatewayError ? err : new GatewayError(
        "upstream_error",
        `Stream from provider "${target.provider}" broke: ${
          rt.redact(String((err as Error)?.message ?? err))
        }`,
        { provider: target.provider },
      );
      return encodeSseData(toOpenAIError(ge));
    },
  });
  return new Response(body$, {
    status: outcome.status,
    headers: { ...headers, ...STREAM_HEADERS },
  });
}

function noteAttempts(
  c: Context<AppEnv>,
  attempts: readonly AttemptRecord[],
  provider: string | undefined,
  model: string | undefined,
): void {
  if (provider !== undefined) c.set("provider", provider);
  if (model !== undefined) c.set("model", model);
  // The common case (one clean attempt) adds nothing to the log line.
  if (attempts.length > 1 || attempts[0]?.outcome !== "ok") c.set("attempts", attempts);
}

/** The client's credential, unless it is a Pilotfish application key (never forwarded). */
function clientCredential(header: string | undefined): string | null {
  if (!header) return null;
  return /^Bearer\s+pf_/i.test(header) ? null : header;
}
