import { GatewayError } from "../../errors.ts";
import type { GeminiSchema } from "./types.ts";

/**
 * JSON Schema (what OpenAI clients send for tool parameters and `json_schema` response
 * formats) -> the OpenAPI 3.0 subset Gemini's `Schema` accepts. Gemini refuses a request with
 * keys outside that subset ("Invalid JSON payload received. Unknown name
 * \"additionalProperties\""), so this keeps only the documented fields and rewrites what has
 * a Gemini form:
 * - `type` becomes the enum name (`"string"` -> `"STRING"`); `["string","null"]` and
 *   `anyOf`/`oneOf` with a `{"type":"null"}` member become `nullable: true`;
 * - `oneOf` becomes `anyOf` (the closest Gemini has), `allOf` is merged into one schema;
 * - local `$ref`s (`#/$defs/X`, `#/definitions/X`, as pydantic and zod emit them) are
 *   inlined; a recursive schema cannot be inlined and is a 400;
 * - `const` becomes a one-value `enum`; `enum`s and `const`s that are not strings are
 *   dropped (Gemini's `enum` is `string[]`); one without a `type` is a STRING;
 * - `format` is kept only where Gemini documents it (STRING: enum/date-time, NUMBER:
 *   float/double, INTEGER: int32/int64): other formats are refused ("only 'enum' and
 *   'date-time' are supported for STRING type");
 * - `required` keeps only names that are in `properties`.
 * Everything else (`$schema`, `additionalProperties`, `strict`, `examples`, `not`,
 * `patternProperties`, `exclusiveMinimum`, ...) is dropped.
 */
export function toGeminiSchema(
  schema: unknown,
  param: string,
  opts: { ordered?: boolean } = {},
): GeminiSchema {
  const root = isObject(schema) ? schema : {};
  const defs = { $defs: asObject(root.$defs), definitions: asObject(root.definitions) };
  const state: State = { defs, param, budget: MAX_NODES, ordered: opts.ordered === true };
  return convert(schema, state, []);
}

/**
 * Bounds the work a schema can cause: `$ref` inlining repeats shared definitions, so a
 * small schema could otherwise expand exponentially.
 */
const MAX_NODES = 5_000;

const TYPES = new Set(["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"]);

const FORMATS: Readonly<Record<string, ReadonlySet<string>>> = {
  STRING: new Set(["enum", "date-time"]),
  NUMBER: new Set(["float", "double"]),
  INTEGER: new Set(["int32", "int64"]),
};

const COPIED_STRINGS = ["title", "description", "pattern"] as const;
const COPIED_NUMBERS = [
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
] as const;

interface State {
  readonly defs: Readonly<Record<"$defs" | "definitions", Record<string, unknown>>>;
  readonly param: string;
  budget: number;
  readonly ordered: boolean;
}

function convert(node: unknown, state: State, refs: readonly string[]): GeminiSchema {
  if (--state.budget < 0) {
    throw invalid(`"${state.param}" is too large to translate for Gemini`, state.param);
  }
  // `true` / `{}` (anything) has no Gemini form beyond an unconstrained schema.
  if (!isObject(node)) return {};
  if (typeof node.$ref === "string") {
    const ref = node.$ref;
    if (refs.includes(ref)) {
      throw invalid(
        `"${state.param}" is recursive ($ref "${ref}"), which Gemini schemas cannot express`,
        state.param,
      );
    }
    const { $ref: _ref, ...siblings } = node;
    const target = convert(resolveRef(ref, state), state, [...refs, ref]);
    // Keywords beside a $ref (a field's description, typically) describe this use of it.
    return { ...target, ...convert(siblings, state, refs) };
  }

  const out: GeminiSchema = {};
  if (Array.isArray(node.allOf)) {
    for (const part of node.allOf) mergeInto(out, convert(part, state, refs));
  }

  const variants = Array.isArray(node.anyOf) ? node.anyOf : node.oneOf;
  if (Array.isArray(variants)) {
    const nonNull = variants.filter((v) => !(isObject(v) && v.type === "null"));
    if (nonNull.length < variants.length) out.nullable = true;
    const converted = nonNull.map((v) => convert(v, state, refs));
    if (converted.length === 1) mergeInto(out, converted[0] as GeminiSchema);
    else if (converted.length > 1) out.anyOf = converted;
  }

  applyType(out, node.type);
  if (node.nullable === true) out.nullable = true;

  for (const key of COPIED_STRINGS) {
    const v = node[key];
    if (typeof v === "string") out[key] = v;
  }
  for (const key of COPIED_NUMBERS) {
    const v = node[key];
    if (typeof v === "number" && Number.isFinite(v)) out[key] = v;
  }
  if (node.default !== undefined) out.default = node.default;
  if (node.example !== undefined) out.example = node.example;

  const values = node.const !== undefined ? [node.const] : node.enum;
  if (Array.isArray(values)) {
    if (values.includes(null)) out.nullable = true;
    const strings = values.filter((v) => v !== null);
    if (strings.length > 0 && strings.every((v) => typeof v === "string")) {
      out.enum = strings as string[];
      // Gemini takes an enum only on a STRING ("function declaration enum only allowed for
      // STRING type"): a bare `enum`/`const` of strings (common in MCP tools) is one.
      if (out.type === undefined && out.anyOf === undefined) out.type = "STRING";
    }
  }
  if (typeof node.format === "string" && out.type !== undefined) {
    if (FORMATS[out.type]?.has(node.format)) out.format = node.format;
  }

  if (isObject(node.properties)) {
    const properties: Record<string, GeminiSchema> = {};
    for (const [name, sub] of Object.entries(node.properties)) {
      properties[name] = convert(sub, state, refs);
    }
    // Gemini refuses an empty `properties` map ("should be non-empty for OBJECT type").
    if (Object.keys(properties).length > 0) {
      out.properties = { ...out.properties, ...properties };
    }
  }
  if (Array.isArray(node.items)) {
    // Tuple validation (draft 2019) has no OpenAPI 3.0 form: any of the listed item schemas.
    const items = node.items.map((v) => convert(v, state, refs));
    if (items.length === 1) out.items = items[0] as GeminiSchema;
    else if (items.length > 1) out.items = { anyOf: items };
  } else if (node.items !== undefined) {
    out.items = convert(node.items, state, refs);
  }

  if (Array.isArray(node.required)) {
    const known = out.properties ?? {};
    const required = node.required.filter((r): r is string =>
      typeof r === "string" && Object.hasOwn(known, r)
    );
    out.required = [...new Set([...(out.required ?? []), ...required])];
    if (out.required.length === 0) delete out.required;
  }
  // Gemini orders structured output alphabetically unless told otherwise; OpenAI keeps the
  // schema's order, which callers parsing a stream field by field rely on.
  if (state.ordered && out.properties !== undefined) {
    out.propertyOrdering = Object.keys(out.properties);
  }
  return out;
}

function applyType(out: GeminiSchema, type: unknown): void {
  const types = typeof type === "string" ? [type] : Array.isArray(type) ? type : [];
  const names = types.filter((t): t is string => typeof t === "string");
  if (names.includes("null")) out.nullable = true;
  const mapped = names.filter((t) => t !== "null").map((t) => t.toUpperCase());
  const known = mapped.filter((t) => TYPES.has(t));
  if (known.length === 1) out.type = known[0] as string;
  else if (known.length > 1) out.anyOf = known.map((t) => ({ type: t }));
}

function mergeInto(out: GeminiSchema, from: GeminiSchema): void {
  const { properties, required, ...rest } = from;
  Object.assign(out, rest);
  if (properties !== undefined) out.properties = { ...out.properties, ...properties };
  if (required !== undefined) out.required = [...new Set([...(out.required ?? []), ...required])];
}

function resolveRef(ref: string, state: State): unknown {
  const match = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
  const defs = match?.[1] === "$defs" ? state.defs.$defs : state.defs.definitions;
  // JSON Pointer escapes: "~1" is "/", "~0" is "~".
  const name = match?.[2]?.replaceAll("~1", "/").replaceAll("~0", "~");
  if (name === undefined || !Object.hasOwn(defs, name)) {
    throw invalid(
      `"${state.param}" refers to "${ref}", which is not a local #/$defs or #/definitions entry`,
      state.param,
    );
  }
  return defs[name];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function asObject(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}
