/**
 * The environment variables the OpenTelemetry SDK and OTLP exporter read (the standard
 * `OTEL_*` configuration). The daemon runs with an env allowlist, and reading a variable
 * outside it throws: `deno task start` grants these (src/permissions/plan.ts).
 * @module
 */
const OTLP_SETTINGS = [
  "ENDPOINT",
  "HEADERS",
  "TIMEOUT",
  "COMPRESSION",
  "CERTIFICATE",
  "CLIENT_CERTIFICATE",
  "CLIENT_KEY",
];

export const OTEL_ENV: readonly string[] = [
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  ...OTLP_SETTINGS.map((s) => `OTEL_EXPORTER_OTLP_${s}`),
  ...OTLP_SETTINGS.map((s) => `OTEL_EXPORTER_OTLP_TRACES_${s}`),
];
