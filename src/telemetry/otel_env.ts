/**
 * The environment variables the OpenTelemetry SDK and OTLP exporter read (the standard
 * `OTEL_*` configuration). The daemon runs with an env allowlist, and reading a variable
 * outside it throws: `deno task start` grants these (src/permissions/plan.ts). Pure parsers
 * of the two the tracer applies itself (the exporter reads the rest).
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
  "PROTOCOL",
];

/** The settings that name a file (PEM) the exporter reads: the planner grants reading it. */
export const OTEL_FILE_ENV: readonly string[] = ["CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"]
  .flatMap((s) => [`OTEL_EXPORTER_OTLP_${s}`, `OTEL_EXPORTER_OTLP_TRACES_${s}`]);

export const OTEL_ENV: readonly string[] = [
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  ...OTLP_SETTINGS.map((s) => `OTEL_EXPORTER_OTLP_${s}`),
  ...OTLP_SETTINGS.map((s) => `OTEL_EXPORTER_OTLP_TRACES_${s}`),
];

/** The OTLP transports Pilotfish exports over. */
export type OtlpProtocol = "http/protobuf" | "http/json";

/**
 * `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: `http/protobuf` or `http/json`; unset is
 * `http/json` (what Pilotfish always sent: no protobuf code loaded unless asked for). `grpc`
 * (or anything else) is not spoken: http/protobuf is used instead, with a warning.
 */
export function otlpProtocol(
  value: string | undefined,
): { readonly protocol: OtlpProtocol; readonly warning?: string } {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "http/json") return { protocol: "http/json" };
  if (v === "http/protobuf") return { protocol: "http/protobuf" };
  return {
    protocol: "http/protobuf",
    warning: `OTLP protocol "${value}" is not supported (only http/protobuf and http/json): ` +
      `exporting traces over http/protobuf instead; point the endpoint at the collector's ` +
      `OTLP/HTTP port (4318), not its gRPC port (4317)`,
  };
}

/**
 * `OTEL_RESOURCE_ATTRIBUTES` (`key1=value1,key2=value2`, values percent-encoded) as
 * attributes. As the SDK spec says, a value with a malformed entry is discarded whole.
 */
export function parseResourceAttributes(
  text: string | undefined,
): { readonly attributes: Readonly<Record<string, string>>; readonly warning?: string } {
  const attributes: Record<string, string> = {};
  if (text === undefined || text.trim() === "") return { attributes };
  for (const entry of text.split(",")) {
    if (entry.trim() === "") continue;
    const eq = entry.indexOf("=");
    const key = eq < 0 ? "" : entry.slice(0, eq).trim();
    let value: string | null = null;
    try {
      value = eq < 0 ? null : decodeURIComponent(entry.slice(eq + 1).trim());
    } catch {
      value = null;
    }
    if (key === "" || value === null) {
      return {
        attributes: {},
        warning: `OTEL_RESOURCE_ATTRIBUTES ignored: "${entry.trim()}" is not key=value`,
      };
    }
    attributes[key] = value;
  }
  return { attributes };
}
