import { GatewayError } from "../../errors.ts";
import { concatBytes, observeStream, SseTail } from "../../streaming/mod.ts";
import { endAt, streamCut } from "../../server/middleware/timeouts.ts";
import type { Exchange } from "../exchange.ts";
import { wholeResponse } from "../../server/whole.ts";

/** Response headers of every SSE answer we send. */
export const STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/** Nothing more to send: the client has the upstream's own error event. */
const TOLD = new Uint8Array(0);

/**
 * An SSE answer already framed for its route. After the first byte there is no retry, so a
 * stream that breaks ends with an error event in the route's own format (`render`); a
 * failure that is not a GatewayError is reported as the provider's, redacted. When
 * server.write_timeout passes mid-stream, or the drain time after SIGTERM runs out, the stream
 * ends the same way.
 */
export function sseResponse(
  ex: Exchange,
  body: ReadableStream<Uint8Array>,
  status: number,
  headers: Record<string, string>,
  render: (error: GatewayError) => Uint8Array,
): Response {
  const cut = streamCut(ex);
  const source = cut ? endAt(body, cut.signal, cut.onCut) : body;
  const provider = ex.provider ?? "unknown";
  const redact = ex.runtime.redact;
  const tail = new SseTail();
  const out = observeStream(source, {
    onChunk: (chunk) => tail.see(chunk),
    renderError: (err) => {
      if (err instanceof GatewayError && err.info.told) return TOLD;
      // After bytes cut mid-event, the error event starts on a fresh line of its own.
      const lead = tail.lead();
      return lead === "" ? renderFor(err) : concatBytes(encoder.encode(lead), renderFor(err));
    },
  });
  return new Response(out, { status, headers: { ...headers, ...STREAM_HEADERS } });

  function renderFor(err: unknown): Uint8Array {
    const ge = err instanceof GatewayError ? err : new GatewayError(
      "upstream_error",
      `Stream from provider "${provider}" broke: ${redact(String((err as Error)?.message ?? err))}`,
      { provider },
    );
    return render(ge);
  }
}

const encoder = new TextEncoder();

/** A JSON answer: an object is serialised, bytes go out as they are. */
export function jsonResponse(
  ex: Exchange,
  body: Record<string, unknown> | Uint8Array<ArrayBuffer>,
  status: number,
  headers: Record<string, string>,
): Response {
  return wholeResponse(ex, body instanceof Uint8Array ? body : JSON.stringify(body), status, {
    ...headers,
    "content-type": "application/json",
  });
}
