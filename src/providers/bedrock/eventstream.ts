import { GatewayError } from "../../errors.ts";

/**
 * Framing for `application/vnd.amazon.eventstream` (ConverseStream's body): bytes in, one
 * decoded message out per frame. Each frame starts with its total length (4 bytes, big
 * endian); the maintained codec (`@smithy/eventstream-codec`) decodes whole frames only,
 * checking both CRCs and parsing the typed headers, so this stage just cuts the byte
 * stream at frame boundaries. Only the current partial frame is kept, in a buffer of its
 * announced size, so bytes are copied once however the network splits them.
 */

/** A decoded frame: typed headers (`:event-type`, `:message-type`, ...) and the payload. */
export interface EventStreamMessage {
  readonly headers: Readonly<Record<string, { readonly type: string; readonly value: unknown }>>;
  readonly body: Uint8Array;
}

interface Codec {
  decode(frame: Uint8Array): EventStreamMessage;
}

/** Prelude (8) + prelude CRC (4) + message CRC (4): the smallest frame there is. */
const MIN_FRAME = 16;
/**
 * AWS caps an event-stream message at 16 MiB of payload plus 128 KiB of headers; a length
 * beyond that means the bytes are not event-stream framing (or are corrupt).
 */
const MAX_FRAME = 16 * 1024 * 1024 + 128 * 1024 + MIN_FRAME;

let codec: Promise<Codec> | null = null;
/** The codec, loaded on first use: only Bedrock streams need it. */
function eventStreamCodec(): Promise<Codec> {
  codec ??= Promise.all([import("@smithy/eventstream-codec"), import("@smithy/util-utf8")])
    .then(([es, utf8]) => new es.EventStreamCodec(utf8.toUtf8, utf8.fromUtf8));
  return codec;
}

/**
 * The framing + decoding stage. A corrupt frame (bad length, CRC mismatch) or a stream
 * that ends inside a frame errors the stream with a GatewayError naming `provider`.
 */
export function createEventStreamDecoder(
  provider: string,
): TransformStream<Uint8Array, EventStreamMessage> {
  const prelude = new Uint8Array(4);
  let preludeFilled = 0;
  let frame: Uint8Array | null = null;
  let filled = 0;
  const broken = (why: string, cause?: unknown) =>
    new GatewayError("upstream_error", `Stream from provider "${provider}" ${why}`, {
      provider,
      ...(cause !== undefined ? { cause } : {}),
    });

  return new TransformStream<Uint8Array, EventStreamMessage>({
    async transform(chunk, controller) {
      let offset = 0;
      while (offset < chunk.length) {
        if (frame === null) {
          const take = Math.min(4 - preludeFilled, chunk.length - offset);
          prelude.set(chunk.subarray(offset, offset + take), preludeFilled);
          preludeFilled += take;
          offset += take;
          if (preludeFilled < 4) break;
          const total = new DataView(prelude.buffer).getUint32(0, false);
          if (total < MIN_FRAME || total > MAX_FRAME) {
            throw broken(`sent an event-stream frame of impossible length ${total}`);
          }
          frame = new Uint8Array(total);
          frame.set(prelude, 0);
          filled = 4;
          preludeFilled = 0;
        }
        const take = Math.min(frame.length - filled, chunk.length - offset);
        frame.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === frame.length) {
          const whole = frame;
          frame = null;
          let message: EventStreamMessage;
          try {
            message = (await eventStreamCodec()).decode(whole);
          } catch (err) {
            throw broken("sent a corrupt event-stream frame", err);
          }
          controller.enqueue(message);
        }
      }
    },
    flush() {
      if (frame !== null || preludeFilled > 0) throw broken("ended in the middle of a frame");
    },
  });
}

/** A string header's value, or "" when absent or not a string. */
export function stringHeader(message: EventStreamMessage, name: string): string {
  const v = message.headers[name]?.value;
  return typeof v === "string" ? v : "";
}
