/**
 * A reader of OTLP/HTTP protobuf trace exports (`ExportTraceServiceRequest`), for fake
 * collectors: the protobuf wire format decoded by field number, only the fields tests read.
 * @module
 */

interface Field {
  readonly no: number;
  /** A varint or fixed number, or a length-delimited field's bytes. */
  readonly value: bigint | Uint8Array;
}

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let shift = 0n;; shift += 7n) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
  };
  const fixed = (n: number): bigint => {
    let v = 0n;
    for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(buf[i + k]!);
    i += n;
    return v;
  };
  while (i < buf.length) {
    const tag = Number(varint());
    const wire = tag & 7;
    const no = tag >>> 3;
    if (wire === 0) out.push({ no, value: varint() });
    else if (wire === 1) out.push({ no, value: fixed(8) });
    else if (wire === 5) out.push({ no, value: fixed(4) });
    else if (wire === 2) {
      const len = Number(varint());
      out.push({ no, value: buf.subarray(i, i + len) });
      i += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const text = (v: bigint | Uint8Array) => new TextDecoder().decode(v as Uint8Array);
const hex = (v: bigint | Uint8Array) =>
  [...(v as Uint8Array)].map((b) => b.toString(16).padStart(2, "0")).join("");
const all = (fs: Field[], no: number) => fs.filter((f) => f.no === no).map((f) => f.value);

/** KeyValue list → attributes (string, bool, int and double values). */
function attributes(list: (bigint | Uint8Array)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list) {
    const f = fields(kv as Uint8Array);
    const key = text(all(f, 1)[0]!);
    const any = fields((all(f, 2)[0] ?? new Uint8Array()) as Uint8Array)[0];
    if (any === undefined) continue;
    out[key] = any.no === 1
      ? text(any.value)
      : any.no === 2
      ? any.value === 1n
      : any.no === 3
      ? Number(any.value)
      : any.value;
  }
  return out;
}

export interface ProtoSpan {
  readonly traceId: string;
  readonly name: string;
  /** OTLP's SpanKind: 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Record<string, unknown>;
}

/** Each resource's attributes and spans in an export request. */
export function decodeTraceExport(
  body: Uint8Array,
): { resource: Record<string, unknown>; spans: ProtoSpan[] }[] {
  return all(fields(body), 1).map((rs) => {
    const r = fields(rs as Uint8Array);
    const resource = all(r, 1)[0];
    const spans = all(r, 2).flatMap((ss) =>
      all(fields(ss as Uint8Array), 2).map((sp) => {
        const s = fields(sp as Uint8Array);
        return {
          traceId: hex(all(s, 1)[0]!),
          name: text(all(s, 5)[0]!),
          kind: Number(all(s, 6)[0] ?? 0n),
          attributes: attributes(all(s, 9)),
        };
      })
    );
    return {
      resource: resource === undefined ? {} : attributes(all(fields(resource as Uint8Array), 1)),
      spans,
    };
  });
}
