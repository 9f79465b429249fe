/**
 * Telemetry: structured logging with secret redaction. Metrics and tracing join here.
 * @module
 */
export { createLogger, type LogFields, type Logger, type LoggerOptions } from "./logger.ts";
export { createRedactor, type Redactor } from "./redact.ts";
