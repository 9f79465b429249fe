import type { Context } from "hono";
import { GatewayError } from "../errors.ts";
import type { ChatOutcome } from "../providers/mod.ts";
import { pickKey, resolveTargets } from "../routing/mod.ts";
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

  // Failover across targets lands with the routing issue; today the first target serves.
  const [target] = resolveTargets(rt.config, body.model, gateway.provider);
  const adapter = rt.adapters.get(target.provider);
  const provider = rt.config.providers[target.provider];
  if (!adapter || !provider) {
    throw new GatewayError("not_found", `Unknown provider "${target.provider}"`, {
      param: "model",
    });
  }
  c.set("provider", target.provider);
  c.set("model", target.model);

  const clientAuth = clientCredential(c.req.header("authorization"));
  let apiKey: string | null = null;
  if (provider.credential_mode === "gateway" && provider.keys.length > 0) {
    const key = pickKey(provider.keys, target.model, rt.random);
    if (!key) {
      throw new GatewayError(
        "not_found",
        `No key of provider "${target.provider}" is allowed to use model "${target.model}"`,
        { param: "model" },
      );
    }
    apiKey = key.key;
  }

  const outcome: ChatOutcome = await adapter.chat({
    body,
    stream,
    signal: c.req.raw.signal,
    timeoutMs: gateway.timeout !== undefined ? gateway.timeout * 1000 : provider.timeout,
    apiKey,
    clientAuthorization: apiKey === null ? clientAuth : null,
    onUsage: (usage) => c.set("usage", usage),
  }, target.model);

  const headers: Record<string, string> = {
    "x-pilotfish-provider": target.provider,
    "x-pilotfish-model": target.model,
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

/** The client's credential, unless it is a Pilotfish application key (never forwarded). */
function clientCredential(header: string | undefined): string | null {
  if (!header) return null;
  return /^Bearer\s+pf_/i.test(header) ? null : header;
}
