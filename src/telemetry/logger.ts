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
    const record: Record<string, unknown> = { time: now().toISOString(), level, msg };
    for (const key in fields) {
      const value = fields[key];
      record[key] = value instanceof Error ? errorJson(value) : value;
    }
    write(opts.redact(JSON.stringify(record)) + "\n");
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    enabled: (level) => LEVEL_RANK[level] >= min,
  };
}

/**
 * Errors are logged as `{name, message}`, never their stack or cause. Done per top-level
 * field rather than with a JSON.stringify replacer, which would run for every key.
 */
function errorJson(err: Error): { name: string; message: string } {
  return { name: err.name, message: err.message };
}
