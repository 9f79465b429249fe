import assert from "node:assert/strict";
import { createSecretScrub } from "../../src/streaming/scrub.ts";
import type { SyncTransformer } from "../../src/streaming/pull.ts";

const KEY = "sk-PROVIDERKEY-openai-AAAAAAAAAAAAAAAA";
const OTHER = "AIzaSyOTHER-gemini-key-000000000000";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** `chunks` through a fresh scrub; the pieces it emitted. */
function run(t: SyncTransformer<Uint8Array, Uint8Array>, chunks: string[]): string[] {
  const out: string[] = [];
  for (const c of chunks) t.transform(enc.encode(c), (b) => out.push(dec.decode(b)));
  t.flush?.((b) => out.push(dec.decode(b)));
  return out;
}

const scrub = createSecretScrub([KEY, OTHER, "short"])!;

Deno.test("scrub: a configured key in relayed bytes becomes [REDACTED], wherever the chunks split it", () => {
  const text = `data: {"error":{"message":"Incorrect API key provided: ${KEY}."}}\n\n`;
  const want = text.replace(KEY, "[REDACTED]");
  assert.equal(run(scrub.transformer(), [text]).join(""), want);
  for (let cut = 1; cut < text.length; cut++) {
    assert.equal(run(scrub.transformer(), [text.slice(0, cut), text.slice(cut)]).join(""), want);
  }
  // Byte by byte.
  assert.equal(run(scrub.transformer(), [...text]).join(""), want);
});

Deno.test("scrub: several keys and repeats; text that only starts like a key goes through whole", () => {
  const text = `${KEY} and ${OTHER} and ${KEY}${KEY} sk-PROVIDER end`;
  assert.equal(
    run(scrub.transformer(), [text.slice(0, 50), text.slice(50)]).join(""),
    "[REDACTED] and [REDACTED] and [REDACTED][REDACTED] sk-PROVIDER end",
  );
  // A chunk ending in what could begin a key is held, then released as it was.
  assert.deepEqual(run(scrub.transformer(), ["abc sk-PRO", "FIT\n"]), ["abc ", "sk-PROFIT\n"]);
  assert.deepEqual(run(scrub.transformer(), ["the end: sk-PROV"]), ["the end: ", "sk-PROV"]);
  // Too short to look for: ordinary text.
  assert.deepEqual(run(scrub.transformer(), ["a short answer"]), ["a short answer"]);
});

Deno.test("scrub: a chunk with nothing to replace is handed on as the same bytes", () => {
  const chunk = enc.encode('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n');
  const seen: Uint8Array[] = [];
  scrub.transformer().transform(chunk, (b) => seen.push(b));
  assert.equal(seen[0], chunk);
  assert.equal(createSecretScrub(["short", ""]), null);
});

Deno.test("scrub: wrap feeds the inner transformer scrubbed chunks, then its flush and cancel", () => {
  const seen: string[] = [];
  let flushed = false;
  let cancelled: unknown = null;
  const inner: SyncTransformer<Uint8Array, string> = {
    transform: (c, enqueue) => {
      seen.push(dec.decode(c));
      enqueue(dec.decode(c).toUpperCase());
    },
    flush: () => {
      flushed = true;
    },
    cancel: (r) => {
      cancelled = r;
    },
  };
  const t = scrub.wrap(inner);
  const out: string[] = [];
  t.transform(enc.encode(`key ${KEY.slice(0, 10)}`), (s) => out.push(s));
  t.transform(enc.encode(`${KEY.slice(10)} x`), (s) => out.push(s));
  t.flush?.((s) => out.push(s));
  assert.equal(seen.join(""), "key [REDACTED] x");
  assert.equal(out.join(""), "KEY [REDACTED] X");
  assert.ok(flushed);
  t.cancel?.("gone");
  assert.equal(cancelled, "gone");
});

Deno.test("scrub: secrets that nest or overlap leave nothing of either, however the chunks split", () => {
  const a = "sk-abcdefgh";
  const b = "sk-abcdefgh-extra-long";
  const one = "key-one-1234";
  const two = "1234-key-two-ZZZZ";
  const nested = createSecretScrub([a, b])!;
  const overlapping = createSecretScrub([one, two])!;
  const cases: [typeof nested, string, string][] = [
    [nested, `x ${b} y ${a} z`, "x [REDACTED] y [REDACTED] z"],
    [overlapping, `AAAA${one.slice(0, -4)}${two}!`, "AAAA[REDACTED]!"],
  ];
  for (const [scrub, text, want] of cases) {
    assert.equal(run(scrub.transformer(), [text]).join(""), want);
    for (let cut = 1; cut < text.length; cut++) {
      assert.equal(
        run(scrub.transformer(), [text.slice(0, cut), text.slice(cut)]).join(""),
        want,
        `cut at ${cut}`,
      );
    }
    assert.equal(run(scrub.transformer(), [...text]).join(""), want, "byte by byte");
  }
  // A stream that ends on a whole secret held back (a longer one might have followed).
  assert.equal(run(nested.transformer(), ["end: sk-abc", "defgh"]).join(""), "end: [REDACTED]");
});

Deno.test("scrub: whole() takes the secrets out of a body read at once; a clean one is the same bytes", () => {
  const scrub = createSecretScrub(["sk-secret-0123456789"])!;
  const enc = new TextEncoder();
  const dirty = enc.encode('{"text":"key sk-secret-0123456789 and sk-secret-0123456789!"}');
  assert.equal(
    new TextDecoder().decode(scrub.whole(dirty)),
    '{"text":"key [REDACTED] and [REDACTED]!"}',
  );
  const clean = enc.encode('{"text":"sk-secret-012345678 is not it"}');
  assert.equal(scrub.whole(clean), clean);
});
