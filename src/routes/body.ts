import { GatewayError } from "../errors.ts";

// Stateless when called without `stream: true`, so one instance serves every request.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Read a JSON request body, refusing it with 413 as soon as it passes `maxBytes`: the
 * declared Content-Length is checked first, then bytes are counted while reading, so an
 * oversize or lying client never makes us buffer more than the limit.
 */
export async function readJsonBody(req: Request, maxBytes: number): Promise<unknown> {
  const tooLarge = () =>
    new GatewayError("payload_too_large", `Request body exceeds the limit of ${maxBytes} bytes`);
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!req.body) {
    throw new GatewayError("invalid_request", "Request body is empty", { param: "body" });
  }
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("invalid_request", "Could not read the request body", { cause: err });
  }
  if (size === 0) {
    throw new GatewayError("invalid_request", "Request body is empty", { param: "body" });
  }
  const bytes = chunks.length === 1 ? chunks[0] as Uint8Array : concat(chunks, size);
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new GatewayError(
      "invalid_request",
      `Request body is not valid JSON: ${(err as Error).message}`,
      { param: "body" },
    );
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
