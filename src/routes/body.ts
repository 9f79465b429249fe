import { GatewayError } from "../errors.ts";

// Stateless when called without `stream: true`, so one instance serves every request.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Read a JSON request body, refusing it with 413 as soon as it passes `maxBytes`: the
 * declared Content-Length is checked first, then bytes are counted while reading, so an
 * oversize or lying client never makes us buffer more than the limit.
 */
export async function readJsonBody(req: Request, maxBytes: number): Promise<unknown> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge(maxBytes);
  }
  if (!req.body) throw emptyBody();
  // Declared and within the limit: HTTP framing guarantees no more than that arrives, so
  // the runtime can read it natively in one piece.
  if (declared !== null) return parseJson(new Uint8Array(await readAll(req)));
  return parseJson(await readCounted(req.body, maxBytes));
}

async function readAll(req: Request): Promise<ArrayBuffer> {
  try {
    return await req.arrayBuffer();
  } catch (err) {
    throw new GatewayError("invalid_request", "Could not read the request body", { cause: err });
  }
}

/** Read a body whole, counting while reading and stopping at the limit (413). */
export async function readCounted(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("invalid_request", "Could not read the request body", { cause: err });
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

function parseJson(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) throw emptyBody();
  try {
    return JSON.parse(UTF8.decode(bytes));
  } catch (err) {
    throw new GatewayError(
      "invalid_request",
      `Request body is not valid JSON: ${(err as Error).message}`,
      { param: "body" },
    );
  }
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError(
    "payload_too_large",
    `Request body exceeds the limit of ${maxBytes} bytes`,
  );
}

function emptyBody(): GatewayError {
  return new GatewayError("invalid_request", "Request body is empty", { param: "body" });
}
