/**
 * Telemetry: structured logging (JSON or console lines) with secret redaction, and request
 * bodies for the log. Metrics and tracing join here.
 * @module
 */
export {
  createLogger,
  type LogFields,
  type LogFormat,
  type Logger,
  type LoggerOptions,
} from "./logger.ts";
export { createRedactor, redactJsonText, type Redactor } from "./redact.ts";
export { type CapturedBody, captureRequestBody, redactBody } from "./body.ts";
