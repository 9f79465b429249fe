/**
 * A local Anthropic Messages API on 127.0.0.1:0 that answers from the checked-in fixtures
 * (tests/fixtures/anthropic): JSON for `stream: false`, the SSE transcript for `stream: true`,
 * or a scripted error. Records what the gateway sent.
 */
import type { RecordedRequest } from "./fake_upstream.ts";

const FIXTURES = new URL("../fixtures/anthropic/", import.meta.url);

export interface FakeAnthropic {
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Fixture names (without extension) for JSON and stream answers, or an error status. */
  script(next: { json?: string; sse?: string; errorStatus?: number; errorFixture?: string }): void;
  close(): Promise<void>;
}

export function startFakeAnthropic(): FakeAnthropic {
  let current: { json?: string; sse?: string; errorStatus?: number; errorFixture?: string } = {
    json: "response_tool_use",
    sse: "stream_tool_use",
  };
  const requests: RecordedRequest[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    requests.push({
      method: req.method,
      path: new URL(req.url).pathname,
      headers: req.headers,
      body,
    });
    if (current.errorStatus) {
      const text = await Deno.readTextFile(
        new URL(`${current.errorFixture ?? "error_529"}.json`, FIXTURES),
      );
      return new Response(text, {
        status: current.errorStatus,
        headers: { "content-type": "application/json" },
      });
    }
    if (new URL(req.url).pathname.endsWith("/messages/count_tokens")) {
      // A count that depends on what was sent (one per 10 bytes), so tests see the prompt.
      return new Response(
        JSON.stringify({ input_tokens: Math.max(1, Math.ceil(body.length / 10)) }),
        { headers: { "content-type": "application/json", "request-id": "req_count_0001" } },
      );
    }
    const stream = (JSON.parse(body) as { stream?: boolean }).stream === true;
    const file = new URL(stream ? `${current.sse}.sse` : `${current.json}.json`, FIXTURES);
    return new Response(await Deno.readFile(file), {
      headers: {
        "content-type": stream ? "text/event-stream" : "application/json",
        "request-id": "req_fake_msg_0001",
      },
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    script(next) {
      current = next;
    },
    close: () => server.shutdown(),
  };
}
