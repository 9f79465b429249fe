import assert from "node:assert/strict";
import { toGeminiSchema } from "../../../src/providers/gemini/schema.ts";
import { gatewayError } from "./helpers.ts";

const P = "tools[0].function.parameters";

Deno.test("toGeminiSchema() keeps the OpenAPI subset and drops the rest", () => {
  assert.deepEqual(
    toGeminiSchema({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "x",
      title: "Query",
      type: "object",
      description: "A search",
      properties: {
        q: { type: "string", minLength: 1, maxLength: 200, pattern: "^\\S", examples: ["a"] },
        limit: {
          type: "integer",
          minimum: 1,
          maximum: 50,
          exclusiveMaximum: 51,
          multipleOf: 1,
          default: 10,
        },
        tags: {
          type: "array",
          items: { type: "string", enum: ["a", "b"] },
          minItems: 0,
          maxItems: 5,
          uniqueItems: true,
        },
        at: { type: "string", format: "date-time" },
        url: { type: "string", format: "uri" },
        ratio: { type: "number", format: "double" },
        count: { type: "integer", format: "int64" },
        free: { type: "object", additionalProperties: { type: "string" } },
        yes: { type: "boolean", readOnly: true, deprecated: false },
      },
      required: ["q", "missing"],
      additionalProperties: false,
      patternProperties: { "^x-": {} },
      strict: true,
    }, P),
    {
      title: "Query",
      type: "OBJECT",
      description: "A search",
      properties: {
        q: { type: "STRING", minLength: 1, maxLength: 200, pattern: "^\\S" },
        limit: { type: "INTEGER", minimum: 1, maximum: 50, default: 10 },
        tags: {
          type: "ARRAY",
          items: { type: "STRING", enum: ["a", "b"] },
          minItems: 0,
          maxItems: 5,
        },
        at: { type: "STRING", format: "date-time" },
        url: { type: "STRING" },
        ratio: { type: "NUMBER", format: "double" },
        count: { type: "INTEGER", format: "int64" },
        free: { type: "OBJECT" },
        yes: { type: "BOOLEAN" },
      },
      required: ["q"],
    },
  );
});

Deno.test("toGeminiSchema() turns null unions into nullable and oneOf into anyOf", () => {
  assert.deepEqual(
    toGeminiSchema({
      type: "object",
      properties: {
        a: { type: ["string", "null"] },
        b: { anyOf: [{ type: "integer" }, { type: "null" }], description: "maybe" },
        c: { oneOf: [{ type: "string" }, { type: "number" }] },
        d: { type: ["string", "number"] },
        e: { enum: ["x", null] },
        f: { const: "fixed" },
        g: { enum: [1, 2, 3], type: "integer" },
        h: { nullable: true, type: "string" },
      },
    }, P),
    {
      type: "OBJECT",
      properties: {
        a: { type: "STRING", nullable: true },
        b: { type: "INTEGER", nullable: true, description: "maybe" },
        c: { anyOf: [{ type: "STRING" }, { type: "NUMBER" }] },
        d: { anyOf: [{ type: "STRING" }, { type: "NUMBER" }] },
        // Gemini takes an enum only on a STRING: a bare enum or const of strings is one.
        e: { type: "STRING", nullable: true, enum: ["x"] },
        f: { type: "STRING", enum: ["fixed"] },
        g: { type: "INTEGER" },
        h: { type: "STRING", nullable: true },
      },
    },
  );
});

Deno.test("toGeminiSchema() inlines local $refs and merges allOf (pydantic output)", () => {
  const pydantic = {
    $defs: {
      Address: {
        title: "Address",
        type: "object",
        properties: { city: { title: "City", type: "string" } },
        required: ["city"],
      },
      Named: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
    },
    title: "Person",
    type: "object",
    allOf: [{ $ref: "#/$defs/Named" }],
    properties: {
      home: { $ref: "#/$defs/Address", description: "Where they live" },
      work: { anyOf: [{ $ref: "#/definitions/Address" }, { type: "null" }] },
    },
    definitions: {
      Address: { type: "object", properties: { street: { type: "string" } } },
    },
    required: ["home"],
  };
  assert.deepEqual(toGeminiSchema(pydantic, P), {
    type: "OBJECT",
    title: "Person",
    properties: {
      name: { type: "STRING" },
      home: {
        title: "Address",
        type: "OBJECT",
        properties: { city: { title: "City", type: "STRING" } },
        required: ["city"],
        description: "Where they live",
      },
      // draft-07's `definitions` is its own namespace beside `$defs`.
      work: { nullable: true, type: "OBJECT", properties: { street: { type: "STRING" } } },
    },
    required: ["name", "home"],
  });
});

Deno.test("toGeminiSchema() orders properties for structured output when asked", () => {
  const out = toGeminiSchema(
    {
      type: "object",
      properties: {
        zeta: { type: "string" },
        alpha: { type: "object", properties: { y: { type: "string" }, x: { type: "string" } } },
      },
    },
    "response_format.json_schema.schema",
    { ordered: true },
  );
  assert.deepEqual(out.propertyOrdering, ["zeta", "alpha"]);
  assert.deepEqual(out.properties?.alpha?.propertyOrdering, ["y", "x"]);
  assert.equal(
    toGeminiSchema({ type: "object", properties: { a: {} } }, P).propertyOrdering,
    undefined,
  );
});

Deno.test("toGeminiSchema() tolerates schemas that say little", () => {
  assert.deepEqual(toGeminiSchema(true, P), {});
  assert.deepEqual(toGeminiSchema({}, P), {});
  assert.deepEqual(toGeminiSchema({ type: "object", properties: {} }, P), { type: "OBJECT" });
  assert.deepEqual(toGeminiSchema({ type: "array", items: [{ type: "string" }] }, P), {
    type: "ARRAY",
    items: { type: "STRING" },
  });
  assert.deepEqual(toGeminiSchema({ type: "tuple-ish" }, P), {});
});

Deno.test("toGeminiSchema() refuses recursive, dangling and oversized schemas", async (t) => {
  await t.step("recursive $ref", async () => {
    const err = await gatewayError(() =>
      toGeminiSchema({
        $defs: {
          Node: {
            type: "object",
            properties: { children: { type: "array", items: { $ref: "#/$defs/Node" } } },
          },
        },
        $ref: "#/$defs/Node",
      }, P)
    );
    assert.equal(err.status, 400);
    assert.equal(err.info.param, P);
    assert.match(err.message, /is recursive \(\$ref "#\/\$defs\/Node"\)/);
  });
  await t.step("a $ref that is not local", async () => {
    const err = await gatewayError(() =>
      toGeminiSchema({ type: "object", properties: { a: { $ref: "https://x/s.json" } } }, P)
    );
    assert.equal(err.info.param, P);
  });
  await t.step("exponential $ref expansion", async () => {
    const defs: Record<string, unknown> = { L0: { type: "string" } };
    for (let i = 1; i <= 20; i++) {
      defs[`L${i}`] = {
        type: "object",
        properties: { a: { $ref: `#/$defs/L${i - 1}` }, b: { $ref: `#/$defs/L${i - 1}` } },
      };
    }
    const err = await gatewayError(() => toGeminiSchema({ $defs: defs, $ref: "#/$defs/L20" }, P));
    assert.match(err.message, /too large/);
  });
});
