import { GatewayError } from "../errors.ts";
import type { Schedule } from "../pipeline/stages.ts";
import type { Context } from "hono";
import type { AppEnv } from "./context.ts";

// Stateless when called without `stream: true`, so one instance serves every request.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Without `server.read_timeout`, a JSON body still has to be complete this long after the
 * handler starts reading it: a client that declares more bytes than it sends (or stops
 * half-way) gets a 408, never a request held open forever. 30 s is the `read_timeout` of
 * Butter's and llm-gateway's example configs.
 */
export const DEFAULT_BODY_MS = 30_000;

/**
 * Read a JSON request body, refusing it with 413 as soon as it passes `maxBytes`: the
 * declared Content-Length is checked first, then bytes are counted while reading, so an
 * oversize or lying client never makes us buffer more than the limit. With `deadline`
 * (server.read_timeout/write_timeout), a body not complete when it aborts is refused with
 * the deadline's reason (408 or 504); without one, `schedule` bounds the read to
 * `DEFAULT_BODY_MS` (408).
 */
export async function readJsonBody(
  req: Request,
  maxBytes: number,
  deadline?: AbortSignal,
  schedule?: Schedule,
): Promise<unknown> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw tooLarge(maxBytes);
  }
  const coding = bodyCoding(req.headers);
  if (coding !== null) {
    // Compressed (rare): read, inflate within the limit, parse; never the fast path.
    if (!req.body) throw emptyBody();
    const read = readCounted(req.body, maxBytes, deadline);
    const bytes = deadline || !schedule ? await read : await bounded(read, schedule);
    return parseJson(await inflate(bytes, coding, maxBytes));
  }
  // Declared and within the limit: HTTP framing guarantees no more than that arrives, so
  // the runtime reads it natively in one piece. `req.body` is not touched on this path: the
  // getter turns a body Deno.serve already holds whole into a stream to be read back.
  let reading: Promise<Uint8Array>;
  if (declared !== null && !deadline) reading = readAll(req).then((b) => new Uint8Array(b));
  else if (!req.body) throw emptyBody();
  else if (deadline) return parseJson(await readCounted(req.body, maxBytes, deadline));
  else reading = readCounted(req.body, maxBytes);
  return parseJson(schedule ? await bounded(reading, schedule) : await reading);
}

/** The 408 of a body not complete within `DEFAULT_BODY_MS` (it closes the connection). */
function bodyTooSlow(): GatewayError {
  return new GatewayError(
    "request_timeout",
    `The request body did not arrive within ${
      DEFAULT_BODY_MS / 1000
    } s (set server.read_timeout to change this)`,
    { headers: { connection: "close" } },
  );
}

/**
 * A body read whole before it is sent upstream (passthrough with the breaker on, a stage, a
 * key allowlist): under `deadline` (server.read_timeout) when set, else within
 * `DEFAULT_BODY_MS`, the body cancelled when either passes.
 */
export async function readHeldBody(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  deadline: AbortSignal | undefined,
  schedule: Schedule,
): Promise<Uint8Array<ArrayBuffer>> {
  if (deadline !== undefined) return await readCounted(body, maxBytes, deadline);
  const late = new AbortController();
  const cancel = schedule(DEFAULT_BODY_MS, () => late.abort(bodyTooSlow()));
  try {
    return await readCounted(body, maxBytes, late.signal);
  } finally {
    cancel();
  }
}

/** `reading`, or a 408 once `DEFAULT_BODY_MS` passed (the 408 closes the connection). */
async function bounded<T>(reading: Promise<T>, schedule: Schedule): Promise<T> {
  let cancel = () => {};
  const late = new Promise<never>((_, reject) => {
    cancel = schedule(DEFAULT_BODY_MS, () => reject(bodyTooSlow()));
  });
  try {
    return await Promise.race([reading, late]);
  } finally {
    cancel();
    reading.catch(() => {});
    late.catch(() => {});
  }
}

async function readAll(req: Request): Promise<ArrayBuffer> {
  try {
    return await req.arrayBuffer();
  } catch (err) {
    throw new GatewayError("invalid_request", "Could not read the request body", { cause: err });
  }
}

/**
 * A small body (admin routes) as text, within `maxBytes` (413 beyond) and, as every body,
 * under `deadline` (server.read_timeout) or else `DEFAULT_BODY_MS` (408); "" when absent.
 */
export async function readText(
  req: Request,
  maxBytes: number,
  deadline: AbortSignal | undefined,
  schedule: Schedule,
): Promise<string> {
  if (req.body === null) return "";
  // A declared length over the limit is refused at once, as on every other route.
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    await req.body.cancel().catch(() => {});
    throw tooLarge(maxBytes);
  }
  // Read as the unified routes read theirs: gzip or deflate inflated, another coding a 415.
  const coding = bodyCoding(req.headers);
  const read = await readHeldBody(req.body, maxBytes, deadline, schedule);
  const bytes = coding === null ? read : await inflate(read, coding, maxBytes);
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new GatewayError("invalid_request", "Request body is not valid UTF-8", { param: "body" });
  }
}

/** The request's small body (admin routes) as text, under the server's limits (`readText`). */
export function requestText(c: Context<AppEnv>): Promise<string> {
  const rt = c.get("runtime");
  return readText(
    c.req.raw,
    rt.config.server.max_body_bytes,
    c.get("exchange").deadlines?.body,
    rt.schedule,
  );
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

/** The request body's Content-Encoding as `DecompressionStream` reads it; null for none. */
export function bodyCoding(headers: Headers): CompressionFormat | null {
  const value = headers.get("content-encoding");
  if (value === null) return null;
  const coding = value.trim().toLowerCase();
  if (coding === "" || coding === "identity") return null;
  if (coding === "gzip" || coding === "x-gzip") return "gzip";
  if (coding === "deflate") return "deflate";
  throw new GatewayError(
    "unsupported_media_type",
    `Content-Encoding "${value}" is not supported for request bodies: send it uncompressed, gzip or deflate`,
    { param: "content-encoding" },
  );
}

/** Compressed bytes go to the decompressor this many at a time (see `inflate`). */
const INFLATE_SLICE = 4096;

/**
 * A compressed body, inflated, refused with 413 once it passes `maxBytes` inflated (a small
 * body must not unpack into gigabytes) and with 400 when it is not what it claims to be. The
 * decompressor is fed small slices, one when the last one's output has been read: given the
 * whole body at once it inflates all of it before anything is counted (a 1 MB gzip of zeros
 * took 1 GB of memory), where slices keep memory near the limit.
 */
export async function inflate(
  bytes: Uint8Array<ArrayBuffer>,
  coding: CompressionFormat,
  maxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  let offset = 0;
  const source = new ReadableStream<BufferSource>({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(offset, offset + INFLATE_SLICE));
      offset += INFLATE_SLICE;
    },
  }, { highWaterMark: 0 });
  const stream = source.pipeThrough(new DecompressionStream(coding));
  try {
    return await readCounted(stream, maxBytes);
  } catch (err) {
    if (err instanceof GatewayError && err.code === "payload_too_large") {
      throw new GatewayError(
        "payload_too_large",
        `Request body exceeds the limit of ${maxBytes} bytes once decompressed`,
      );
    }
    throw new GatewayError("invalid_request", `Request body is not valid ${coding} data`, {
      param: "body",
      cause: err,
    });
  }
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

export function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError(
    "payload_too_large",
    `Request body exceeds the limit of ${maxBytes} bytes`,
  );
}

function emptyBody(): GatewayError {
  return new GatewayError("invalid_request", "Request body is empty", { param: "body" });
}

/**
 * A streamed upload as it goes upstream, watched so that a failure of the client's is not
 * taken for the provider's: bytes past `maxBytes` (413), a client that drops mid-body (499),
 * and an upstream timeout that ran out while the body was still arriving (408: the provider
 * never had the whole request). `signal` aborts the upstream call the moment the client's
 * side fails, before fetch can report it as an unreachable provider.
 */
export function watchUpload(body: ReadableStream<Uint8Array>, maxBytes: number) {
  const failed = new AbortController();
  const reader = body.getReader();
  let seen = 0;
  let state: "streaming" | "complete" | "dropped" | "too_large" = "streaming";
  const fail = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    to: "dropped" | "too_large",
    err: unknown,
  ) => {
    state = to;
    failed.abort(err);
    controller.error(err);
  };
  return {
    body: new ReadableStream<Uint8Array>({
      async pull(controller) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (err) {
          return fail(controller, "dropped", err);
        }
        if (r.done) {
          state = "complete";
          return controller.close();
        }
        seen += r.value.byteLength;
        if (seen <= maxBytes) return controller.enqueue(r.value);
        reader.cancel().catch(() => {});
        fail(controller, "too_large", tooLarge(maxBytes));
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 }),
    signal: failed.signal,
    /**
     * The client's error behind an upstream call's failure `err`, if the client caused it.
     * `deadlinePassed`: the request's own deadline (write_timeout) ended the call, which no
     * slow body is to blame for.
     */
    blame(err: unknown, deadlinePassed: boolean): GatewayError | undefined {
      if (state === "too_large") return tooLarge(maxBytes);
      if (state === "dropped") {
        return new GatewayError("client_closed", "Client closed the request mid-body", {
          retryable: false,
          cause: err,
        });
      }
      if (
        state === "streaming" && !deadlinePassed && err instanceof GatewayError &&
        err.code === "upstream_timeout"
      ) {
        return new GatewayError(
          "request_timeout",
          `The request body was still arriving when the upstream call timed out (${err.message})`,
          { cause: err },
        );
      }
      return undefined;
    },
  };
}
