import type { LogLevel } from "../config/mod.ts";
import type { Redactor } from "./redact.ts";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

/** Structured JSON-lines logger. Every line passes through the redactor before it is written. */
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
  /** Where lines go; stdout by default. */
  write?: (line: string) => void;
  now?: () => Date;
}

const encoder = new TextEncoder();
function writeStdout(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line));
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = LEVEL_RANK[opts.level];
  const write = opts.write ?? writeStdout;
  const now = opts.now ?? (() => new Date());
  const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < min) return;
    const line = JSON.stringify({ time: now().toISOString(), level, msg, ...fields }, errorJson);
    write(opts.redact(line) + "\n");
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    enabled: (level) => LEVEL_RANK[level] >= min,
  };
}

/** JSON.stringify replacer: errors become `{name, message}` (never their stack or cause). */
function errorJson(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message } : value;
}
