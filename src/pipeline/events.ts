/**
 * Typed telemetry events and the tiny synchronous bus they travel on. The exchange emits;
 * the access log (the first built-in stage), and later metrics and tracing, subscribe here
 * and nowhere else. Emit sites check `bus.on[type]` first, so an event nobody listens to is
 * never even built.
 * @module
 */
import type { AttemptRecord, Target } from "../routing/mod.ts";
import type { Usage } from "../providers/types.ts";
import type { StreamOutcome } from "../streaming/observe.ts";
import type { Exchange } from "./exchange.ts";

/** How the response ended: a buffered answer is `complete` once handed over. */
export type ResponseOutcome = StreamOutcome;

/** What telemetry counts a limit under: the scope's kind, never its (unbounded) value. */
export interface LimitLabel {
  /** `global` | `app_key` | `user` | `ip` | `model` | `provider`. */
  readonly scope: string;
  /** The limited metric: `requests` or `tokens`. */
  readonly metric: string;
  /** The rule's window: `minute`, `day`, ... (the status page's rows; not a metric label). */
  readonly window: string;
  /** `scope` and `metric` as one map key, built once per rule. */
  readonly key: string;
  /** The rule's own id: the status page's row (two dialects' global minute limits are two). */
  readonly row: string;
}

/** One limit of a `rate_limit` decision (the limiter's counter state after it). */
export interface LimitCount {
  readonly check: { readonly label: LimitLabel };
  readonly limit: number;
  readonly remaining: number;
}

export type TelemetryEvent =
  | { readonly type: "request_start"; readonly exchange: Exchange }
  | {
    readonly type: "request_end";
    readonly exchange: Exchange;
    readonly status: number;
    readonly outcome: ResponseOutcome;
    readonly duration_ms: number;
    /** The winner's usage (what was streamed, for a stream cut short); null when unknown. */
    readonly usage: Usage | null;
  }
  | {
    readonly type: "attempt_start";
    readonly exchange: Exchange;
    readonly target: Target;
    /**
     * A tracing subscriber writes the attempt span's W3C `traceparent` (and the continued
     * trace's `tracestate`) here; the attempt sends them upstream (src/providers/execute.ts).
     */
    readonly propagate: { traceparent?: string; tracestate?: string };
  }
  | {
    readonly type: "attempt_end";
    readonly exchange: Exchange;
    readonly attempt: AttemptRecord;
    /** This attempt's own usage, once settled (a hedge loser that finished has its own). */
    readonly usage: Usage | null;
  }
  | {
    readonly type: "first_chunk";
    readonly exchange: Exchange;
    readonly target: Target;
    /** From the attempt's start. */
    readonly ms: number;
    /**
     * The `traceparent` its `attempt_start` got from the tracer, when traced: which attempt
     * streamed (a retry on the same target has the same target).
     */
    readonly traceparent?: string;
  }
  | {
    readonly type: "breaker_transition";
    readonly provider: string;
    readonly key: string;
    readonly from: string;
    readonly to: string;
  }
  | {
    readonly type: "retry";
    readonly exchange: Exchange;
    readonly attempt: AttemptRecord;
    readonly wait_ms: number;
  }
  | {
    readonly type: "failover";
    readonly exchange: Exchange;
    readonly from: Target;
    readonly to: Target;
  }
  | {
    readonly type: "hedge";
    readonly exchange: Exchange;
    readonly primary: Target;
    readonly secondary: Target;
  }
  | {
    readonly type: "short_circuit";
    readonly exchange: Exchange;
    readonly stage: string;
    readonly hook: string;
    readonly action: "respond" | "reject";
    readonly status: number;
  }
  | {
    readonly type: "stage_error";
    readonly exchange: Exchange;
    readonly stage: string;
    readonly hook: string;
    readonly fail_mode: "open" | "closed";
    readonly timed_out: boolean;
    readonly error: unknown;
  }
  | {
    /** A breaker decision that is not a plain admit (llm-proxy's counters). */
    readonly type: "breaker_decision";
    readonly exchange: Exchange;
    readonly provider: string;
    readonly model: string;
    /** `fast_fail`: refused while open; `probe`: the half-open probe; `bypass`: the valve. */
    readonly decision: "fast_fail" | "probe" | "bypass";
    /** Bypass: the caller's reason (already allowlisted), else "". */
    readonly reason: string;
    /** Probe/bypass: how the call ended (`ok`, `provider_degraded`, `rate_limited`, ...). */
    readonly outcome: string;
  }
  | {
    /**
     * A rate-limit decision (emitted by the rate-limit stage): every limit an admitted
     * request counted against, or the one that refused it. One event per request, not per
     * limit: the bus and its subscribers are on every limited request's path.
     */
    readonly type: "rate_limit";
    readonly exchange: Exchange;
    readonly decision: "allow" | "deny";
    readonly limits: readonly LimitCount[];
  }
  | {
    /** A response-cache lookup (emitted by the cache stage). */
    readonly type: "cache";
    readonly exchange: Exchange;
    readonly result: "hit" | "miss";
  };

export type EventType = TelemetryEvent["type"];
export type EventOf<T extends EventType> = Extract<TelemetryEvent, { type: T }>;

export const EVENT_TYPES: readonly EventType[] = [
  "request_start",
  "request_end",
  "attempt_start",
  "attempt_end",
  "first_chunk",
  "breaker_transition",
  "retry",
  "failover",
  "hedge",
  "short_circuit",
  "stage_error",
  "breaker_decision",
  "rate_limit",
  "cache",
];

export type Listener = (event: TelemetryEvent) => void;

export interface EventBus {
  /** Whether anyone listens to each type: check before building an event. */
  readonly on: Readonly<Record<EventType, boolean>>;
  /** Deliver to every listener of its type, in subscription order; a throwing one is reported. */
  emit(event: TelemetryEvent): void;
  /** Listen to `types` (all when absent); returns the unsubscribe. */
  subscribe(listener: Listener, types?: readonly EventType[]): () => void;
}

/**
 * A bus with no I/O: delivery is synchronous, in order. `onError` hears about a listener
 * that threw (the request goes on regardless).
 */
export function createEventBus(onError: (error: unknown, event: TelemetryEvent) => void): EventBus {
  const on = Object.fromEntries(EVENT_TYPES.map((t) => [t, false])) as Record<EventType, boolean>;
  const listeners = new Map<EventType, Listener[]>(EVENT_TYPES.map((t) => [t, []]));
  const refresh = (t: EventType) => {
    on[t] = (listeners.get(t) as Listener[]).length > 0;
  };
  return {
    on,
    emit(event) {
      for (const listener of listeners.get(event.type) as Listener[]) {
        try {
          listener(event);
        } catch (err) {
          onError(err, event);
        }
      }
    },
    subscribe(listener, types = EVENT_TYPES) {
      for (const t of types) {
        listeners.set(t, [...(listeners.get(t) as Listener[]), listener]);
        refresh(t);
      }
      return () => {
        for (const t of types) {
          listeners.set(t, (listeners.get(t) as Listener[]).filter((l) => l !== listener));
          refresh(t);
        }
      };
    },
  };
}
