import { GatewayError } from "../errors.ts";

// Stateless when called without `stream: true`, so one instance serves every request.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Read a JSON request body, refusing it with 413 as soon as it passes `maxBytes`: the
 * declared Content-Length is checked first, then bytes are counted while reading, so an
 * oversize or lying client never makes us buffer more than the limit. With `deadline`
 * (server.read_timeout/write_timeout), a body not complete when it aborts is refused with
 * the deadline's reason (408 or 504).
 */
export async function readJsonBody(
  req: Request,
  maxBytes: number,
  deadline?: AbortSignal,
): Promise<unknown> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge(maxBytes);
  }
  if (!req.body) throw emptyBody();
  // Declared and within the limit: HTTP framing guarantees no more than that arrives, so
  // the runtime can read it natively in one piece (unless a deadline must be able to stop it).
  if (declared !== null && !deadline) return parseJson(new Uint8Array(await readAll(req)));
  return parseJson(await readCounted(req.body, maxBytes, deadline));
}

async function readAll(req: Request): Promise<ArrayBuffer> {
  try {
    return await req.arrayBuffer();
  } catch (err) {
    throw new GatewayError("invalid_request", "Could not read the request body", { cause: err });
  }
}

/**
 * Read a body whole, counting while reading and stopping at the limit (413), or when
 * `deadline` aborts first (the body is cancelled; its reason is thrown).
 */
export async function readCounted(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  deadline?: AbortSignal,
): Promise<Uint8Array<ArrayBuffer>> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const next = deadline ? () => readBefore(reader, deadline) : () => reader.read();
  try {
    for (;;) {
      const { done, value } = await next();
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
  // A request body's chunks are never views of shared memory.
  if (chunks.length === 1) return chunks[0] as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** One read, or the deadline's reason (and the body cancelled) if it aborts first. */
function readBefore(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  deadline: AbortSignal,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  return new Promise((resolve, reject) => {
    // Rejected before cancelling: the cancel settles the pending read as `done`.
    const onAbort = () => {
      reject(deadline.reason);
      reader.cancel(deadline.reason).catch(() => {});
    };
    if (deadline.aborted) return onAbort();
    deadline.addEventListener("abort", onAbort, { once: true });
    reader.read().then(resolve, reject).finally(() => {
      deadline.removeEventListener("abort", onAbort);
    });
  });
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
