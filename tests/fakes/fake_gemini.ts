/**
 * A local Gemini API on 127.0.0.1:0 that answers from the checked-in fixtures
 * (tests/fixtures/gemini): `:generateContent` with a JSON response, `:streamGenerateContent`
 * with the SSE transcript (only with `?alt=sse`, as the real API), `:batchEmbedContents`
 * with embeddings, or a scripted error. Records what the gateway sent.
 */
import type { RecordedRequest } from "./fake_upstream.ts";

const FIXTURES = new URL("../fixtures/gemini/", import.meta.url);

export interface GeminiRecordedRequest extends RecordedRequest {
  /** The query string, `?alt=sse` for streams. */
  readonly search: string;
}

export interface GeminiScript {
  /** Fixture names without extension. */
  json?: string;
  sse?: string;
  embeddings?: string;
  errorStatus?: number;
  errorFixture?: string;
  errorHeaders?: Record<string, string>;
}

export interface FakeGemini {
  readonly url: string;
  readonly requests: GeminiRecordedRequest[];
  script(next: GeminiScript): void;
  close(): Promise<void>;
}

const DEFAULT: GeminiScript = {
  json: "response_function_call",
  sse: "stream_function_call",
  embeddings: "embeddings",
};

export function startFakeGemini(): FakeGemini {
  let current: GeminiScript = DEFAULT;
  const requests: GeminiRecordedRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const body = await req.text();
    requests.push({
      method: req.method,
      path: url.pathname,
      search: url.search,
      headers: req.headers,
      body,
    });
    if (current.errorStatus) {
      const text = await Deno.readTextFile(
        new URL(`${current.errorFixture ?? "error_429"}.json`, FIXTURES),
      );
      return new Response(text, {
        status: current.errorStatus,
        headers: { "content-type": "application/json; charset=UTF-8", ...current.errorHeaders },
      });
    }
    const method = url.pathname.slice(url.pathname.lastIndexOf(":") + 1);
    const answer = (name: string | undefined, ext: string, type: string) =>
      Deno.readFile(new URL(`${name}.${ext}`, FIXTURES)).then((bytes) =>
        new Response(bytes, { headers: { "content-type": type } })
      );
    switch (method) {
      case "generateContent":
        return answer(current.json, "json", "application/json; charset=UTF-8");
      case "streamGenerateContent":
        return url.searchParams.get("alt") === "sse"
          ? answer(current.sse, "sse", "text/event-stream")
          // Without alt=sse the real API streams one JSON array; nothing here wants that.
          : new Response("[]", { headers: { "content-type": "application/json" } });
      case "countTokens":
        // A count that depends on what was sent (one per 10 bytes), so tests see the prompt.
        return new Response(
          JSON.stringify({ totalTokens: Math.max(1, Math.ceil(body.length / 10)) }),
          { headers: { "content-type": "application/json" } },
        );
      case "batchEmbedContents":
        return answer(current.embeddings, "json", "application/json; charset=UTF-8");
      default:
        return new Response(
          JSON.stringify({ error: { code: 404, message: "Not found", status: "NOT_FOUND" } }),
          { status: 404, headers: { "content-type": "application/json" } },
        );
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    script(next) {
      current = { ...DEFAULT, ...next };
    },
    close: () => server.shutdown(),
  };
}
