import assert from "node:assert/strict";
import { observeStream, RelayedFailure, type StreamOutcome } from "../../src/streaming/mod.ts";
import { GatewayError } from "../../src/errors.ts";
import { rechunk, streamOf } from "../helpers/chunk.ts";

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked (`--trace-leaks`
 * alone only adds stack traces), so tests that start timers or streams opt in here.
 */
const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Ends {
  calls: { outcome: StreamOutcome; error?: unknown }[];
  onEnd(outcome: StreamOutcome, error?: unknown): void;
}

function recordEnds(): Ends {
  const calls: Ends["calls"] = [];
  return {
    calls,
    onEnd(outcome, error) {
      calls.push(error === undefined ? { outcome } : { outcome, error });
    },
  };
}

/** A source that yields `chunks`, then fails with `error`. */
function failingSource(chunks: Uint8Array[], error: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks[i++];
      if (next) controller.enqueue(next);
      else controller.error(error);
    },
  }, { highWaterMark: 0 });
}

Deno.test(
  "observeStream() shows every chunk to onChunk and ends once with complete",
  SANITIZE,
  async () => {
    const input = rechunk(encoder.encode("data: one\n\ndata: two\n\n"), 7);
    const seen: Uint8Array[] = [];
    const ends = recordEnds();
    const out = await Array.fromAsync(
      observeStream(streamOf(input), { onChunk: (c) => seen.push(c), onEnd: ends.onEnd }),
    );
    assert.deepEqual(out, input);
    assert.deepEqual(seen, input);
    assert.deepEqual(ends.calls, [{ outcome: "complete" }]);
  },
);

Deno.test("observeStream() works with no callbacks at all", SANITIZE, async () => {
  const input = rechunk(encoder.encode("abcdef"), 2);
  assert.deepEqual(await Array.fromAsync(observeStream(streamOf(input), {})), input);
});

Deno.test(
  "observeStream() propagates consumer cancel to the source's cancel()",
  SANITIZE,
  async () => {
    const cancelled: unknown[] = [];
    let pulls = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(encoder.encode(`chunk ${pulls++}\n`));
      },
      cancel(reason) {
        cancelled.push(reason);
      },
    }, { highWaterMark: 0 });
    const ends = recordEnds();
    const reader = observeStream(source, { onEnd: ends.onEnd }).getReader();
    const first = await reader.read();
    assert.equal(decoder.decode(first.value), "chunk 0\n");
    await reader.cancel("client went away");
    assert.deepEqual(cancelled, ["client went away"]);
    assert.deepEqual(ends.calls, [{ outcome: "client_abort", error: "client went away" }]);
  },
);

Deno.test(
  "observeStream() passes a broken source to the consumer and ends with upstream_cut",
  SANITIZE,
  async () => {
    const boom = new Error("upstream broke");
    const ends = recordEnds();
    const seen: Uint8Array[] = [];
    const reader = observeStream(failingSource([encoder.encode("a")], boom), {
      onChunk: (c) => seen.push(c),
      onEnd: ends.onEnd,
    }).getReader();
    assert.equal(decoder.decode((await reader.read()).value), "a");
    await assert.rejects(() => reader.read(), (err: unknown) => err === boom);
    assert.equal(seen.length, 1);
    assert.deepEqual(ends.calls, [{ outcome: "upstream_cut", error: boom }]);
  },
);

Deno.test(
  "observeStream() renders a mid-stream error as bytes, then closes",
  SANITIZE,
  async () => {
    const boom = new Error("upstream broke");
    const ends = recordEnds();
    const rendered: unknown[] = [];
    const out = await Array.fromAsync(
      observeStream(failingSource([encoder.encode("data: 1\n\n")], boom), {
        onEnd: ends.onEnd,
        renderError(err) {
          rendered.push(err);
          return encoder.encode('data: {"error":{"message":"upstream broke"}}\n\n');
        },
      }),
    );
    assert.deepEqual(
      out.map((c) => decoder.decode(c)),
      ["data: 1\n\n", 'data: {"error":{"message":"upstream broke"}}\n\n'],
    );
    assert.deepEqual(rendered, [boom]);
    assert.deepEqual(ends.calls, [{ outcome: "upstream_cut", error: boom }]);
  },
);

Deno.test(
  "observeStream() ends with error when the source reports an error in the stream",
  SANITIZE,
  async () => {
    const reported = new GatewayError("upstream_error", "Stream failed (overloaded_error)");
    const ends = recordEnds();
    await Array.fromAsync(
      observeStream(failingSource([encoder.encode("data: 1\n\n")], reported), {
        onEnd: ends.onEnd,
        renderError: () => encoder.encode("event: error\n\n"),
      }),
    );
    assert.deepEqual(ends.calls, [{ outcome: "error", error: reported }]);
  },
);

Deno.test(
  "observeStream() tells an outer observer the real outcome behind a rendered error",
  SANITIZE,
  async (t) => {
    for (
      const [error, outcome] of [
        [new GatewayError("upstream_error", "in-stream error"), "error"],
        [new TypeError("error reading a body from connection"), "upstream_cut"],
      ] as const
    ) {
      await t.step(outcome, async () => {
        const inner = recordEnds();
        const outer = recordEnds();
        // The route renders the failure as an event and closes; the access log wraps that.
        const routeBody = observeStream(failingSource([encoder.encode("data: 1\n\n")], error), {
          onEnd: inner.onEnd,
          renderError: () => encoder.encode('data: {"error":{}}\n\n'),
        });
        const out = await Array.fromAsync(
          observeStream(new Response(routeBody).body!, { onEnd: outer.onEnd }),
        );
        assert.equal(out.length, 2, "the client still gets the error event and a clean end");
        assert.deepEqual(inner.calls, [{ outcome, error }]);
        assert.deepEqual(outer.calls, [{ outcome, error }]);
      });
    }
  },
);

Deno.test(
  "observeStream() does not call onEnd again when cancelled after completion",
  SANITIZE,
  async () => {
    const ends = recordEnds();
    const stream = observeStream(streamOf([encoder.encode("x")]), { onEnd: ends.onEnd });
    const reader = stream.getReader();
    assert.equal((await reader.read()).done, false);
    assert.equal((await reader.read()).done, true);
    await reader.cancel("late");
    assert.deepEqual(ends.calls, [{ outcome: "complete" }]);
  },
);

Deno.test(
  "observeStream() ends a relayed failure cleanly, nothing added, outcome error",
  SANITIZE,
  async () => {
    const told = new GatewayError("upstream_error", "Bedrock is unavailable.");
    const ends = recordEnds();
    const sent = [encoder.encode("frame-1"), encoder.encode("exception-frame")];
    const out = observeStream(failingSource(sent, new RelayedFailure(told)), {
      onEnd: ends.onEnd,
      // Never asked: the failure is already in the client's bytes.
      renderError: () => encoder.encode("ours"),
    });
    assert.equal(decoder.decode(await new Response(out).arrayBuffer()), "frame-1exception-frame");
    assert.deepEqual(ends.calls, [{ outcome: "error", error: told }]);
    // Any other failure is still rendered.
    const other = recordEnds();
    const rendered = observeStream(failingSource(sent, told), {
      onEnd: other.onEnd,
      renderError: () => encoder.encode("ours"),
    });
    assert.equal(
      decoder.decode(await new Response(rendered).arrayBuffer()),
      "frame-1exception-frameours",
    );
  },
);
