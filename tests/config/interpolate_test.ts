import assert from "node:assert/strict";
import {
  type EnvLookup,
  interpolate,
  interpolateTree,
  referencedEnvVars,
} from "../../src/config/interpolate.ts";

function envOf(vars: Record<string, string>): EnvLookup {
  return (name) => vars[name];
}

Deno.test("interpolate() substitutes ${VAR} references", () => {
  const env = envOf({ HOST: "example.com", PORT: "8443" });
  assert.equal(interpolate("https://${HOST}:${PORT}/v1", env), "https://example.com:8443/v1");
  assert.equal(interpolate("${HOST}", env), "example.com");
});

Deno.test("interpolate() uses the :- default when the variable is unset or empty", () => {
  const env = envOf({ EMPTY: "", SET: "value" });
  assert.equal(interpolate("${MISSING:-fallback}", env), "fallback");
  assert.equal(interpolate("${EMPTY:-fallback}", env), "fallback");
  assert.equal(interpolate("${SET:-fallback}", env), "value");
  assert.equal(interpolate("${MISSING:-}", env), "");
  assert.equal(interpolate("${MISSING:-a:b/c}", env), "a:b/c");
});

Deno.test("interpolate() replaces an unset variable without default by an empty string", () => {
  assert.equal(interpolate("key=${NOPE};", envOf({})), "key=;");
});

Deno.test("interpolate() leaves text without a valid reference untouched", () => {
  const env = envOf({ HOME: "/root" });
  assert.equal(interpolate("$HOME and plain text", env), "$HOME and plain text");
  assert.equal(interpolate("${1BAD}", env), "${1BAD}");
  assert.equal(interpolate("${unterminated", env), "${unterminated");
});

Deno.test("interpolateTree() substitutes every string in nested maps and lists", () => {
  const env = envOf({ A: "1", B: "two" });
  const tree = {
    s: "${A}",
    n: 3,
    b: true,
    nil: null,
    list: ["${B}", { deep: "x-${A}-${B}" }],
  };
  assert.deepEqual(interpolateTree(tree, env), {
    s: "1",
    n: 3,
    b: true,
    nil: null,
    list: ["two", { deep: "x-1-two" }],
  });
  // The input tree is not mutated.
  assert.equal(tree.s, "${A}");
});

Deno.test("interpolateTree() keeps a value carrying YAML syntax a plain string", () => {
  const hostile = "x\nadmin_token: stolen\nproviders: {evil: {base_url: http://evil}}";
  const out = interpolateTree({ server: { admin_token: "${TOKEN}" } }, envOf({ TOKEN: hostile }));
  assert.deepEqual(out, { server: { admin_token: hostile } });
});

Deno.test("interpolateTree() does not substitute in map keys", () => {
  const out = interpolateTree({ "${K}": "v" }, envOf({ K: "injected" }));
  assert.deepEqual(out, { "${K}": "v" });
});

Deno.test("referencedEnvVars() lists each referenced name once, sorted", () => {
  const text = [
    'key: "${OPENAI_API_KEY}"',
    "url: ${BASE_URL:-http://localhost}",
    "again: ${OPENAI_API_KEY}",
    "ignored: $PLAIN ${1BAD}",
    "a: ${A_1}",
  ].join("\n");
  assert.deepEqual(referencedEnvVars(text), ["A_1", "BASE_URL", "OPENAI_API_KEY"]);
  assert.deepEqual(referencedEnvVars("no refs"), []);
});
