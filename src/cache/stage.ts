/**
 * The response cache as a stage: `pre_llm` looks the request up and, on a hit, answers it
 * (`respond` with a provider-shaped outcome, so the route encodes it in the client's format,
 * as a stream when the client streams); `post_llm` stores a successful JSON answer. With
 * `cache.streaming`, a streamed answer is assembled from its chunks and stored once it
 * completed. Errors and incomplete streams are never stored.
 * @module
 */
import type { ChatChunk, ChatOutcome, Usage } from "../providers/types.ts";
import { clientCredential, type Exchange, setReplyHeader } from "../pipeline/exchange.ts";
import type { PreLlmResult, Stage } from "../pipeline/stages.ts";
import type { TelemetryEvent } from "../pipeline/events.ts";
import { pilotfishHeaders, takesClientCredential } from "../routing/mod.ts";
import { noUsage, replayedUsage } from "../streaming/mod.ts";
import {
  CACHED_SCHEMAS,
  cacheKeyText,
  type CachePolicy,
  digestKey,
  memoryKey,
  skipReason,
} from "./key.ts";
import { replayChunks } from "./replay.ts";
import { modelInJsonHead, modelOfBody } from "../streaming/response_model.ts";
import { isObject } from "../schema/openai.ts";
import type { CacheBackend } from "./store.ts";
import { HeldSlot } from "../slot.ts";

/** What is stored: the canonical answer and who gave it. */
export interface CachedAnswer {
  readonly provider: string;
  readonly model: string;
  readonly body: Record<string, unknown>;
}

export interface CacheStageDeps {
  readonly policy: CachePolicy;
  readonly ttlMs: number;
  readonly backend: CacheBackend;
}

export const CACHE_HEADER = "x-cache";
/** Butter's hit marker. */
export const BUTTER_CACHE_HEADER = "x-butter-cache";

export function createCacheStage(deps: CacheStageDeps): Stage {
  const { policy, backend, ttlMs } = deps;
  /** A shared store is keyed by digests (documented, and bounded in length); memory by text. */
  const keyOf = backend.kind === "memory" ? memoryKey : digestKey;
  /** The key of each exchange that missed: its answer is stored under it. */
  const keys = new HeldSlot<string>("cacheKey");
  /** Streams being assembled for storage (`cache.streaming`). */
  const streams = new HeldSlot<StreamAssembly>("cacheStream");
  /**
   * Misses being answered, by key. An identical request that misses meanwhile waits for
   * that answer instead of paying for the same completion again (a stampede of one prompt
   * would otherwise cost N upstream calls); local to this sidecar.
   */
  const flights = new Map<string, Flight>();
  /** The flight an exchange leads: landed once its answer is stored, or it ended without. */
  const leads = new HeldSlot<Flight>("cacheFlight");

  /** Takes the exchange's flight off it: the caller lands it. */
  const takeFlight = (ex: Exchange): Flight | undefined => {
    const flight = leads.get(ex);
    if (flight !== undefined) leads.delete(ex);
    return flight;
  };
  const landFlight = (flight: Flight | undefined) => {
    if (flight === undefined) return;
    if (flights.get(flight.key) === flight) flights.delete(flight.key);
    flight.land();
  };
  const land = (ex: Exchange) => landFlight(takeFlight(ex));

  /** Store the answer's JSON text (`body`): the value is a `CachedAnswer` as JSON. */
  const store = (ex: Exchange, key: string, body: string) => {
    const value = `{"provider":${JSON.stringify(ex.provider ?? "")},"model":${
      JSON.stringify(ex.model ?? "")
    },"body":${body}}`;
    const flight = takeFlight(ex);
    const done = backend.set(key, value, ttlMs);
    // Waiters look again once the entry is there (a Redis write takes a round trip).
    if (done instanceof Promise) done.catch(() => {}).finally(() => landFlight(flight));
    else landFlight(flight);
  };

  /**
   * Waits for the flight, at most until `until` (`clock` ms): true when it landed, false
   * when the time ran out.
   */
  const waitFor = (ex: Exchange, flight: Flight, until: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const cancel = ex.runtime.schedule(Math.max(0, until - ex.clock.now()), () => resolve(false));
      flight.landed.then(() => {
        cancel();
        resolve(true);
      });
    });

  /**
   * Look the key up. A miss while an identical request is being answered waits for that
   * answer, once: if it landed without one stored (it failed, was not storable, or expired at
   * once), every waiter asks upstream itself, together, rather than one after another behind
   * a new leader (N identical requests whose answer is never stored would otherwise take N
   * times as long). The wait is within `COALESCE_WAIT_MS` and the caller's own budget
   * (`x-gateway.timeout`, else `routing.failover.deadline`), counted from its arrival; once
   * that is spent, it asks upstream itself (failover gets what is left of the budget).
   */
  const lookup = (
    ex: Exchange,
    key: string,
    includeUsage: boolean,
    waited = false,
  ): PreLlmResult | undefined | Promise<PreLlmResult | undefined> => {
    const found = backend.get(key);
    const then = (v: string | null) => {
      const flight = v === null && !waited ? flights.get(key) : undefined;
      if (flight === undefined) return answer(ex, key, v, includeUsage);
      const by = waitUntil(ex);
      if (ex.clock.now() >= by) return answer(ex, key, v, includeUsage);
      return waitFor(ex, flight, by).then((landed) =>
        landed ? lookup(ex, key, includeUsage, true) : answer(ex, key, null, includeUsage)
      );
    };
    // The memory backend answers at once: no promise hop (and no stage timer) for it.
    return found instanceof Promise ? found.then(then) : then(found);
  };

  // Memory entries are only ever written by `store`, as `{"provider","model","body"}` with
  // the body's text as the provider sent it (unchecked at the miss: most misses are never hit)
  // or as serialised here: a hit splits it without a parse, and checks the body once (the
  // memo below). A shared Redis value is parsed and checked on every hit.
  const trusted = backend.kind === "memory";
  /** Memory hits as served (checked, headers, bytes), by key: a repeated hit reuses them. */
  const served = new Map<string, Served>();
  let servedChars = 0;
  /** Memory values whose body is no answer, by key (the value as found). */
  const rejected = new Map<string, string>();

  const hitOf = (key: string, found: string): Served | null => {
    let hit: Hit | null;
    if (trusted) {
      const memo = served.get(key);
      // The store hands back the same string while the entry lives: equal at once.
      if (memo !== undefined && memo.found === found) return memo;
      if (rejected.get(key) === found) return null;
      const split = splitAnswer(found);
      hit = split === null
        ? parseAnswer(found)
        : split.text !== null && isAnswerText(split.text)
        ? split
        : null;
      if (hit === null) {
        if (rejected.size >= MEMO_ENTRIES) rejected.clear();
        rejected.set(key, found);
        return null;
      }
    } else {
      hit = parseAnswer(found);
      if (hit === null) return null;
    }
    const out: Served = {
      ...hit,
      found,
      bytes: null,
      keepBytes: found.length <= MEMO_BYTES_CHARS,
      headers: Object.freeze({
        ...pilotfishHeaders(hit.provider, hit.model, 0),
        [CACHE_HEADER]: "HIT",
        [BUTTER_CACHE_HEADER]: "hit",
      }),
    };
    if (trusted && hit.text !== null && found.length <= MEMO_CHARS) {
      if (served.size >= MEMO_ENTRIES || servedChars + found.length > MEMO_CHARS) {
        served.clear();
        servedChars = 0;
      }
      served.set(key, out);
      servedChars += found.length;
    }
    return out;
  };

  const answer = (ex: Exchange, key: string, found: string | null, includeUsage: boolean) => {
    const hit = found === null ? null : hitOf(key, found);
    const bus = ex.runtime.events;
    if (bus.on.cache) {
      bus.emit({ type: "cache", exchange: ex, result: hit === null ? "miss" : "hit" });
    }
    if (hit === null) {
      ex.cacheStatus = "miss";
      setReplyHeader(ex, CACHE_HEADER, "MISS");
      keys.set(ex, key);
      if (ex.stream) streams.set(ex, new StreamAssembly());
      // Only an answer that will be stored is worth waiting for: a JSON one. A stream is
      // stored only if it turns out whole, with usage and nothing the store drops, and
      // only once its client has read it all: not known now, and not worth a wait.
      if (!ex.stream && !flights.has(key)) {
        const flight = new Flight(key);
        flights.set(key, flight);
        leads.set(ex, flight);
      }
      return undefined;
    }
    ex.cacheStatus = "hit";
    ex.provider = hit.provider;
    ex.model = hit.model;
    ex.cachedModel = hit.body !== null ? modelOfBody(hit.body) : modelInJsonHead(bytesOf(hit));
    // Parsed per replay: the chunks carry parts of it, and they are not shared.
    const replayed = ex.stream ? hit.body ?? parseBody(hit.text) : null;
    const outcome: ChatOutcome = replayed !== null
      ? {
        kind: "stream",
        status: 200,
        format: "chunks",
        body: ReadableStream.from(replayChunks(replayed, includeUsage)),
        usage: replayedUsage(isObject(replayed.usage) ? replayed.usage as Partial<Usage> : null),
      }
      : hit.text !== null && !(ex.schema === "openai_chat" && hit.text.includes(STOP_SEQUENCE))
      // The stored text is the answer's JSON as the route would serialise it: sent as is
      // (a Response copies its bytes, so one buffer serves every hit). One that names the
      // stop sequence it ended on (ours, for /v1/messages, which shares the entry) goes as an
      // object on the chat route, whose encoder leaves that field out as OpenAI does.
      ? {
        kind: "json",
        status: 200,
        format: "openai_json",
        body: bytesOf(hit),
        usage: noUsage(),
      }
      : {
        kind: "json",
        status: 200,
        format: "object",
        body: hit.body ?? parseBody(hit.text),
        usage: noUsage(),
      };
    return {
      action: "respond",
      status: 200,
      body: hit.text ?? hit.body,
      outcome,
      // The route copies them before adding its own.
      headers: hit.headers,
    } satisfies PreLlmResult;
  };

  const stage: Stage = {
    name: "response_cache",
    fail_mode: "open",
    // A lookup is bounded by the backend (Redis commands have their own deadline); a wait
    // for an identical request's answer by `waitFor`.
    timeout_ms: COALESCE_WAIT_MS + 1_000,
    schemas: CACHED_SCHEMAS,
    pre_llm(ex, view) {
      // (The stage runs on CACHED_SCHEMAS only: this narrows the view's type.)
      if (
        view.schema !== "openai_chat" && view.schema !== "anthropic_messages" &&
        view.schema !== "embeddings"
      ) {
        return;
      }
      // A key must cover everything that can change the answer, and a hit must give it all.
      if ("exact" in view && view.exact === false) return;
      const body = view.body;
      const skip = skipReason(policy, {
        schema: ex.schema,
        stream: ex.stream,
        gatewayCache: ex.gateway.cache,
        cacheControl: ex.headers.get("cache-control"),
        body,
        appKey: ex.principal.appKey,
      });
      if (skip !== null) return;
      const includeUsage = view.schema !== "embeddings" &&
        view.body.stream_options?.include_usage === true;
      const scope = (policy.scope === "key" ? ex.principal.appKey ?? "" : "") +
        credentialScope(ex);
      return lookup(ex, keyOf(cacheKeyText(ex.targets, scope, body)), includeUsage);
    },
    // The provider's JSON as it came, when it did: stored as that text, never serialised
    // again (checked in memory at its first hit, for Redis before it is written).
    post_llm_body: "text",
    post_llm(ex, res) {
      const key = keys.get(ex);
      if (key === undefined || res.stream) return;
      keys.delete(ex);
      // In memory the text is checked at its first hit (`hitOf`); a shared store gets only
      // answers (every sidecar parses what it reads there anyway).
      const text = res.status !== 200
        ? null
        : res.text !== undefined
        ? trusted || isAnswerText(res.text) ? res.text : null
        : res.body !== undefined && isAnswer(res.body)
        ? JSON.stringify(res.body)
        : null;
      if (text !== null) store(ex, key, text);
      else land(ex);
    },
    // A leader that ends without an answer stored (failed, rejected by a later stage, cut
    // off) lands its flight here: its waiters look again and go upstream themselves.
    trace_events: ["request_end"],
    trace(event: TelemetryEvent) {
      if (event.type === "request_end") land(event.exchange);
    },
  };
  if (!policy.streaming) return stage;
  return {
    ...stage,
    stream_chunk(ex, chunk) {
      streams.get(ex)?.add(chunk);
    },
    // Only a stream that missed is assembled; any other keeps its bytes as they came.
    wants_chunks: (ex) => streams.get(ex) !== undefined,
    trace(event: TelemetryEvent) {
      if (event.type !== "request_end") return;
      const ex = event.exchange;
      const assembly = streams.get(ex);
      const key = keys.get(ex);
      if (assembly === undefined || key === undefined) return land(ex);
      streams.delete(ex);
      keys.delete(ex);
      // Only a stream that completed normally is an answer worth replaying.
      if (event.status !== 200 || event.outcome !== "complete") return land(ex);
      // Counts the client did not ask to see (its usage chunk stripped) are still the
      // upstream's: the metered usage stands in, unless it is an estimate.
      const metered = event.usage !== null && !event.usage.estimated ? event.usage : undefined;
      const body = assembly.completion(metered);
      if (body !== null) store(ex, key, JSON.stringify(body));
      else land(ex);
    },
  };
}

/** The longest a request waits for an identical one's answer before asking upstream itself. */
export const COALESCE_WAIT_MS = 30_000;

/** When a request stops waiting for identical ones (`clock` ms): see `lookup`. */
function waitUntil(ex: Exchange): number {
  const own = ex.gateway.timeout;
  const budget = own !== undefined ? own * 1000 : ex.runtime.config.routing.failover.deadline;
  return ex.started + Math.min(COALESCE_WAIT_MS, budget);
}

/**
 * One miss being answered; `landed` resolves once it is stored or will not be. Its promise is
 * made only when a request waits on it: most misses have nobody waiting.
 */
class Flight {
  #landed: Promise<void> | null = null;
  #resolve: (() => void) | null = null;
  #done = false;
  constructor(readonly key: string) {}

  get landed(): Promise<void> {
    if (this.#landed === null) {
      if (this.#done) return this.#landed = Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#landed = promise;
      this.#resolve = resolve;
    }
    return this.#landed;
  }

  land(): void {
    this.#done = true;
    this.#resolve?.();
  }
}

/** A hit: the answer parsed (`body`), or its JSON text as stored (`text`). */
interface Hit {
  readonly provider: string;
  readonly model: string;
  readonly text: string | null;
  readonly body: Record<string, unknown> | null;
}

/** A hit with what serving it takes, built once per entry. */
interface Served extends Hit {
  /** The stored value it was read from. */
  readonly found: string;
  bytes: Uint8Array<ArrayBuffer> | null;
  /** Its bytes are kept for the next hit (a small answer: the memo holds no big copies). */
  readonly keepBytes: boolean;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Bounds of the memos: entries, the characters of the values they hold (which may outlive
 * their entries until the memo is cleared), and the largest answer whose bytes are kept.
 */
const MEMO_ENTRIES = 64;
const MEMO_CHARS = 8 * 1024 * 1024;
const MEMO_BYTES_CHARS = 32_768;

/** The answer's bytes as sent: encoded once per memoised entry, per hit for a large one. */
function bytesOf(hit: Served): Uint8Array<ArrayBuffer> {
  if (hit.bytes !== null) return hit.bytes;
  const bytes = utf8.encode(hit.text as string);
  if (hit.keepBytes) hit.bytes = bytes;
  return bytes;
}

const utf8 = new TextEncoder();
/** A choice's `stop_sequence` in stored JSON (a string inside an answer cannot hold it). */
const STOP_SEQUENCE = '"stop_sequence":';

function parseBody(text: string | null): Record<string, unknown> {
  return JSON.parse(text as string) as Record<string, unknown>;
}

function parseAnswer(text: string): Hit | null {
  try {
    const v = JSON.parse(text) as CachedAnswer;
    return v && typeof v === "object" && v.body && isAnswer(v.body)
      ? { provider: v.provider, model: v.model, text: null, body: v.body }
      : null;
  } catch {
    return null;
  }
}

/**
 * A value `store` wrote, split without parsing the answer: it is exactly
 * `{"provider":"...","model":"...","body":{...}}` (JSON.stringify of a `CachedAnswer`), so the
 * body's text is what the route would have serialised. Null when it is not of that shape.
 */
function splitAnswer(text: string): Hit | null {
  const P = '{"provider":';
  const M = ',"model":';
  const B = ',"body":';
  if (!text.startsWith(P) || !text.endsWith("}")) return null;
  const pEnd = stringEnd(text, P.length);
  if (pEnd < 0 || !text.startsWith(M, pEnd)) return null;
  const mEnd = stringEnd(text, pEnd + M.length);
  if (mEnd < 0 || !text.startsWith(B, mEnd)) return null;
  return {
    provider: jsonString(text, P.length, pEnd),
    model: jsonString(text, pEnd + M.length, mEnd),
    text: text.slice(mEnd + B.length, -1),
    body: null,
  };
}

/** The index after the JSON string that opens at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  if (text.charCodeAt(open) !== 34) return -1;
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i + 1;
  }
  return -1;
}

/** The JSON string text[from, to) decoded (escapes only when there are any). */
function jsonString(text: string, from: number, to: number): string {
  const raw = text.slice(from + 1, to - 1);
  return raw.includes("\\") ? JSON.parse(text.slice(from, to)) as string : raw;
}

/** Whether `text` is JSON for an answer to keep (`isAnswer`). */
function isAnswerText(text: string): boolean {
  try {
    const body = JSON.parse(text) as unknown;
    return isObject(body) && isAnswer(body);
  } catch {
    return false;
  }
}

/** A chat completion with choices, or an embeddings list with vectors: an answer to keep. */
function isAnswer(body: Record<string, unknown>): boolean {
  if (body.error !== undefined) return false;
  if (Array.isArray(body.choices)) return body.choices.length > 0;
  return body.object === "list" && Array.isArray(body.data) && body.data.length > 0;
}

interface ChoiceParts {
  content: string;
  tools: { id: string; name: string; arguments: string; extra?: object }[];
  finish: string | null;
  /** The stop sequence that ended it, when the finish chunk said (`/v1/messages` replays it). */
  stopSequence?: string | null;
}

/** A stream's chunks folded back into the `chat.completion` they spell. */
class StreamAssembly {
  #id = "";
  #created = 0;
  #model = "";
  #choices = new Map<number, ChoiceParts>();
  #usage: unknown = undefined;
  #fingerprint: unknown = null;
  /** Broken, or carrying what the assembled answer would leave out (logprobs, reasoning). */
  #unfit = false;

  add(chunk: ChatChunk): void {
    if ((chunk as { error?: unknown }).error !== undefined) this.#unfit = true;
    this.#id ||= chunk.id;
    this.#created ||= chunk.created;
    this.#model ||= chunk.model;
    if (chunk.usage) this.#usage = chunk.usage;
    const fingerprint = (chunk as { system_fingerprint?: unknown }).system_fingerprint;
    if (fingerprint !== undefined && fingerprint !== null) this.#fingerprint = fingerprint;
    for (const c of chunk.choices ?? []) {
      if (!this.#unfit && lossyChoice(c)) this.#unfit = true;
      let parts = this.#choices.get(c.index);
      if (!parts) this.#choices.set(c.index, parts = { content: "", tools: [], finish: null });
      if (typeof c.delta?.content === "string") parts.content += c.delta.content;
      for (const t of c.delta?.tool_calls ?? []) {
        const slot = parts.tools[t.index] ??= { id: "", name: "", arguments: "" };
        if (t.id) slot.id = t.id;
        if (t.function?.name) slot.name += t.function.name;
        slot.arguments += t.function?.arguments ?? "";
        if (t.extra_content !== undefined) slot.extra = t.extra_content;
      }
      if (c.finish_reason) parts.finish = c.finish_reason;
      if (c.stop_sequence !== undefined) parts.stopSequence = c.stop_sequence;
    }
  }

  /**
   * The answer, or null when it is not whole: broken, unfinished, unfit, or without usage
   * (its own usage chunk, else `metered`: what the upstream counted).
   */
  completion(metered?: unknown): Record<string, unknown> | null {
    const usage = this.#usage ?? metered;
    if (this.#unfit || this.#choices.size === 0 || usage === undefined) return null;
    const choices = [...this.#choices].sort(([a], [b]) => a - b).map(([index, p]) => {
      if (p.finish === null) return null;
      const tools = p.tools.filter((t) => t !== undefined);
      return {
        index,
        message: {
          role: "assistant",
          content: p.content === "" && tools.length > 0 ? null : p.content,
          refusal: null,
          ...(tools.length > 0
            ? {
              tool_calls: tools.map((t) => ({
                id: t.id,
                type: "function",
                function: { name: t.name, arguments: t.arguments },
                // Gemini's thought signature: the next turn must hand it back.
                ...(t.extra !== undefined ? { extra_content: t.extra } : {}),
              })),
            }
            : {}),
        },
        logprobs: null,
        finish_reason: p.finish,
        ...(p.stopSequence !== undefined ? { stop_sequence: p.stopSequence } : {}),
      };
    });
    if (choices.some((c) => c === null)) return null;
    return {
      id: this.#id,
      object: "chat.completion",
      created: this.#created,
      model: this.#model,
      choices,
      usage,
      system_fingerprint: this.#fingerprint,
    };
  }
}

/** Delta fields the assembly keeps; a choice with anything else (or logprobs) is not stored. */
const ASSEMBLED_DELTA = new Set(["role", "content", "tool_calls"]);

function lossyChoice(c: { delta?: unknown; logprobs?: unknown }): boolean {
  if (c.logprobs !== undefined && c.logprobs !== null) return true;
  const d = c.delta;
  if (d === null || typeof d !== "object") return false;
  for (const [k, v] of Object.entries(d)) {
    if (v === null || v === undefined || v === "" || ASSEMBLED_DELTA.has(k)) continue;
    return true;
  }
  return false;
}

/**
 * An answer one of the targets makes with the client's own credential (a provider with
 * `credential_mode: passthrough`, or one with no keys) is that credential's: its fingerprint
 * joins the key, so a client whose credential the provider never saw cannot read it. Empty
 * when every target uses the gateway's keys (those answers are shared, as configured).
 */
function credentialScope(ex: Exchange): string {
  const providers = ex.runtime.config.providers;
  const own = ex.targets.some((t) => {
    const p = providers[t.provider];
    return p !== undefined && takesClientCredential(p);
  });
  if (!own) return "";
  const credential = clientCredential(ex.headers);
  return credential === null ? "\ncredential:none" : `\ncredential:${digestKey(credential)}`;
}
