import type { LoggingConfig, LogLevel } from "../config/mod.ts";
import type { Redactor } from "./redact.ts";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;
export type LogFormat = LoggingConfig["format"];

/** Structured logger, one line per event. Every line passes through the redactor. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level: LogLevel;
  redact: Redactor;
  /** `json` (default): one JSON object per line; `console`: one readable line per event. */
  format?: LogFormat;
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
  now?: () => Date;
}

const encoder = new TextEncoder();

/** What a line is written to: `Deno.stdout` and `Deno.stderr` have this shape. */
export interface SyncWriter {
  writeSync(bytes: Uint8Array): number;
}

/**
 * A line writer onto `out` (stdout by default) that never throws into its caller: a log line
 * is written from request handlers, and a closed or broken stdout (a log shipper that went
 * away, `| head`) must not turn every request into a 500. The first failure is said once on
 * `fallback` (stderr), then lines are dropped. A short write is continued.
 */
export function lineWriter(
  out: SyncWriter = Deno.stdout,
  fallback: SyncWriter = Deno.stderr,
): (line: string) => void {
  let broken = false;
  return (line) => {
    if (broken) return;
    let bytes = encoder.encode(line);
    try {
      while (bytes.byteLength > 0) {
        const n = out.writeSync(bytes);
        // A writer that takes nothing would spin here for ever: count it as broken.
        if (n <= 0) throw new Error("stdout took no bytes");
        bytes = bytes.subarray(n);
      }
    } catch (err) {
      broken = true;
      const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      try {
        fallback.writeSync(
          encoder.encode(`pilotfish: log output failed (${why}); dropping log lines\n`),
        );
      } catch {
        // stderr is gone too: nothing left to tell
      }
    }
  };
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = LEVEL_RANK[opts.level];
  const write = opts.write ?? lineWriter();
  const now = opts.now ?? (() => new Date());
  const render = opts.format === "console" ? consoleLine : jsonLine;
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < min) return;
    write(opts.redact(render(now(), level, msg, fields)) + "\n");
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    enabled: (level) => LEVEL_RANK[level] >= min,
  };
}

function jsonLine(time: Date, level: LogLevel, msg: string, fields?: LogFields): string {
  const record: Record<string, unknown> = { time: time.toISOString(), level, msg };
  for (const key in fields) {
    const value = fields[key];
    record[key] = value instanceof Error ? errorJson(value) : value;
  }
  return JSON.stringify(record);
}

/** Fields the console summary of a request already shows. */
const SUMMARISED = new Set([
  "method",
  "path",
  "status",
  "provider",
  "model",
  "duration_ms",
  "outcome",
  // Said by the summary's `stream=<outcome>`: not a second `stream=` key on the line.
  "stream",
]);

/**
 * `2025-01-02T03:04:05.678Z INFO  POST /v1/chat/completions 200 openai/gpt-4o 12.3ms
 * stream=complete request_id=... prompt_tokens=7`: the access-log facts first, in a fixed
 * order, then every other field as key=value. Still one line: newlines are escaped.
 */
function consoleLine(time: Date, level: LogLevel, msg: string, fields: LogFields = {}): string {
  const parts = [time.toISOString(), level.toUpperCase().padEnd(5)];
  const isRequest = msg === "request" && typeof fields.method === "string";
  if (isRequest) {
    parts.push(
      oneLine(String(fields.method)),
      oneLine(String(fields.path ?? "")),
      oneLine(String(fields.status ?? "-")),
    );
    if (fields.provider || fields.model) {
      parts.push(
        oneLine(
          fields.provider ? `${fields.provider}/${fields.model ?? "?"}` : String(fields.model),
        ),
      );
    }
    if (typeof fields.duration_ms === "number") parts.push(`${fields.duration_ms}ms`);
    if (fields.outcome !== undefined) parts.push(`stream=${fields.outcome}`);
  } else {
    parts.push(oneLine(msg));
  }
  for (const key in fields) {
    if (isRequest && SUMMARISED.has(key)) continue;
    const value = fields[key];
    if (value === undefined || value === null) continue;
    parts.push(`${key}=${consoleValue(value)}`);
  }
  return parts.join(" ");
}

function consoleValue(value: unknown): string {
  if (value instanceof Error) return consoleValue(`${value.name}: ${value.message}`);
  if (typeof value === "string") {
    // Quoted (and so escaped) unless plainly one word: no space, quote, `=` or control byte.
    // deno-lint-ignore no-control-regex -- control bytes are what it looks for
    return /^[^\s"=\x00-\x1f\x7f]+$/.test(value) ? value : JSON.stringify(value);
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * Text written bare on a console line: a newline, a carriage return or any other control
 * byte (a terminal escape) in it is escaped, so a client-chosen string (a model name, a path)
 * can neither start a forged line nor drive the terminal.
 */
function oneLine(text: string): string {
  return text.replace(/\r?\n/g, "\\n").replace(
    // deno-lint-ignore no-control-regex -- control bytes are what it escapes
    /[\x00-\x1f\x7f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Errors are logged as `{name, message}`, never their stack or cause. Done per top-level
 * field rather than with a JSON.stringify replacer, which would run for every key.
 */
function errorJson(err: Error): { name: string; message: string } {
  return { name: err.name, message: err.message };
}
