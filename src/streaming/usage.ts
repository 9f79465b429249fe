import type { OpenAIUsage as Usage } from "../schema/openai.ts";

/** One-shot decodes (no `stream` state): one decoder serves them all. */
const utf8 = new TextDecoder();

/**
 * Usage as data, per attempt: an adapter creates one meter per answer, its taps and
 * translators report what the upstream counted, and the answer carries `meter.usage`, a
 * promise settled when the answer is complete. A stream that is cut short (the client left,
 * the upstream broke) settles with what was seen: the counts reported so far, and for output
 * the upstream never counted (cut short, or ended without counts), an estimate from the
 * content that went out (~4 characters a token, as llm-proxy estimates).
 */
export interface UsageMeter {
  /** Counts the upstream reported; later reports win field by field. */
  report(usage: Partial<Usage>): void;
  /** Characters of content sent on, for the estimate of a stream cut short. */
  content(chars: number): void;
  /**
   * The input as estimated from the request (a passthrough body's size): billed, marked
   * estimated, when the upstream reported no input count before the answer ended. Called
   * only then: most answers report their count and never need it.
   */
  promptEstimate(tokens: () => number): void;
  /**
   * This answer never counts its input (Gemini's embeddings): without a count, the
   * `promptEstimate` is billed even when it completes, marked estimated.
   */
  inputUncounted(): void;
  /** The answer is complete (`complete`) or was cut short (`cut`): settle `usage`. */
  settle(how: "complete" | "cut"): void;
  readonly usage: Promise<Usage | null>;
}

/**
 * A usage promise's synchronous view (its settled value, or what its meter has seen so far),
 * so the access log can report a stream cut mid-way at once. A symbol-keyed property on the
 * promise itself: cheaper per request than a WeakMap entry.
 */
const NOW: unique symbol = Symbol("pilotfish.usageNow");
/** The counts the upstream itself reported so far, estimates aside. */
const REPORTED: unique symbol = Symbol("pilotfish.usageReported");
type Viewed = Promise<Usage | null> & {
  [NOW]?: () => Usage | null;
  [REPORTED]?: () => Partial<Usage> | null;
};

function view(p: Promise<Usage | null>, fn: () => Usage | null): Promise<Usage | null> {
  (p as Viewed)[NOW] = fn;
  return p;
}

export function createUsageMeter(): UsageMeter {
  let seen: Partial<Usage> | null = null;
  let total = false;
  let chars = 0;
  let promptGuess: () => number = () => 0;
  let uncounted = false;
  let settled = false;
  const { promise, resolve } = Promise.withResolvers<Usage | null>();
  const current = (cut: boolean): Usage | null => {
    // Output the upstream never counted, from the content that went out: a stream cut short,
    // or one that ended without counts (an OpenAI stream not asked for include_usage).
    const estimate = chars > 0 ? Math.ceil(chars / 4) : 0;
    if (seen === null) {
      const p = cut || uncounted ? promptGuess() : 0;
      return estimate > 0 || p > 0
        ? {
          prompt_tokens: p,
          completion_tokens: estimate,
          total_tokens: p + estimate,
          estimated: true,
        }
        : null;
    }
    const guess = (cut || uncounted) && seen.prompt_tokens === undefined ? promptGuess() : 0;
    const guessed = guess > 0;
    const p = seen.prompt_tokens ?? guess;
    // A count sent at the start (Anthropic's message_start says 1) is no count of what a
    // stream cut short went on to send.
    const overtaken = cut && seen.completion_tokens !== undefined &&
      estimate > seen.completion_tokens;
    const c = overtaken ? estimate : seen.completion_tokens ?? estimate;
    const usage: Usage = {
      ...seen,
      prompt_tokens: p,
      completion_tokens: c,
      total_tokens: total && seen.total_tokens !== undefined ? seen.total_tokens : p + c,
    };
    // Billing must know the count is not the upstream's (no output count, or no input).
    if (
      (seen.completion_tokens === undefined && estimate > 0) || overtaken || guessed ||
      (cut && (seen.completion_tokens === undefined || seen.prompt_tokens === undefined))
    ) {
      usage.estimated = true;
    }
    if (overtaken || guessed) usage.total_tokens = p + c;
    return usage;
  };
  view(promise, () => current(true));
  (promise as Viewed)[REPORTED] = () => seen;
  return {
    report(usage) {
      if (settled) return;
      seen = seen === null ? { ...usage } : { ...seen, ...usage };
      total = usage.total_tokens !== undefined;
    },
    content(n) {
      chars += n;
    },
    promptEstimate(tokens) {
      promptGuess = tokens;
    },
    inputUncounted() {
      uncounted = true;
    },
    settle(how) {
      if (settled) return;
      settled = true;
      const value = current(how === "cut");
      view(promise, () => value);
      resolve(value);
    },
    usage: promise,
  };
}

const NONE: Promise<Usage | null> = view(Promise.resolve(null), () => null);

/** The usage of an answer that reported none. */
export function noUsage(): Promise<Usage | null> {
  return NONE;
}

/**
 * A replayed answer's usage (a cache hit): nothing is used here (it settles null), but what
 * the stored answer counted is what its stream reports at its start (Anthropic's
 * `message_start`), so the replay's opening and closing counts agree.
 */
export function replayedUsage(stored: Partial<Usage> | null): Promise<Usage | null> {
  if (stored === null) return NONE;
  const p = view(Promise.resolve(null), () => null);
  (p as Viewed)[REPORTED] = () => stored;
  return p;
}

/** The usage of an answer complete on arrival (JSON). */
export function knownUsage(usage: Usage | null): Promise<Usage | null> {
  if (usage === null) return NONE;
  return view(Promise.resolve(usage), () => usage);
}

/**
 * What `usage` says right now: its settled value, or for a stream still settling what its
 * meter has seen (estimated as if cut here). Undefined for a promise no meter made.
 */
export function usageNow(usage: Promise<Usage | null>): Usage | null | undefined {
  return (usage as Viewed)[NOW]?.();
}

/**
 * The counts an upstream has reported so far (an Anthropic or Gemini stream reports its input
 * at its start), never an estimate; null when none, or for a promise no meter made.
 */
export function usageReported(usage: Promise<Usage | null>): Partial<Usage> | null {
  return (usage as Viewed)[REPORTED]?.() ?? null;
}

/**
 * Count content and settle `meter` as typed chunks pass: complete at the end, cut when the
 * consumer cancels or the source fails.
 */
export function meterChunks<T extends { choices?: readonly { delta?: unknown }[] }>(
  meter: UsageMeter,
): TransformStream<T, T> {
  return new TransformStream<T, T>({
    transform(chunk, controller) {
      const delta = chunk.choices?.[0]?.delta as { content?: unknown } | undefined;
      if (typeof delta?.content === "string") meter.content(delta.content.length);
      controller.enqueue(chunk);
    },
    flush() {
      meter.settle("complete");
    },
    cancel() {
      meter.settle("cut");
    },
  } as Transformer<T, T>);
}

/** The characters of base64 (standard and URL-safe alphabets), as a table. */
const BASE64_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-") {
  BASE64_CHAR[c.charCodeAt(0)] = 1;
}

/** A run of base64 this long is an image or a file: priced per image, not per byte. */
const BASE64_RUN = 512;

/**
 * The characters of `text` a prompt estimate counts: all but runs of 512+ base64 characters
 * (and their `=` padding), which would bill a 1 MB image as 330,000 tokens when it costs a
 * provider about 1,600. One pass over the text: a regex restarting inside every word took
 * three times as long on prose.
 */
export function textChars(text: string): number {
  let n = text.length;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128 && BASE64_CHAR[c] === 1) {
      run++;
      continue;
    }
    if (run >= BASE64_RUN) {
      let pad = 0;
      while (pad < 2 && text.charCodeAt(i + pad) === 61) pad++; // "="
      n -= run + pad;
      if (pad > 0) i += pad - 1; // the next character after the padding is read next
    }
    run = 0;
  }
  if (run >= BASE64_RUN) n -= run;
  return n;
}

/** A held passthrough body's size for the estimate, base64 runs left out; null unread. */
export function promptBytes(body: Uint8Array | null): number | null {
  if (body === null) return null;
  return textChars(utf8.decode(body));
}
