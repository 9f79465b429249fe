import assert from "node:assert/strict";
import { createRedactor, redactJsonText } from "../../src/telemetry/mod.ts";

Deno.test("createRedactor() removes every configured secret", () => {
  const redact = createRedactor(["my-admin-token-42", "plainsecretvalue", "my-admin"]);
  assert.equal(
    redact("token=my-admin-token-42 other=plainsecretvalue again=plainsecretvalue"),
    "token=[REDACTED] other=[REDACTED] again=[REDACTED]",
  );
  // The longer secret wins over a secret that is its prefix.
  assert.equal(redact("my-admin-token-42"), "[REDACTED]");
});

Deno.test("createRedactor() ignores configured secrets shorter than 4 characters", () => {
  const redact = createRedactor(["", "ab", "abc"]);
  assert.equal(redact("abc ab"), "abc ab");
});

Deno.test("createRedactor() removes credential-shaped text", async (t) => {
  const redact = createRedactor([]);
  const cases: [string, string, string][] = [
    ["Bearer token", "Authorization: Bearer xxx", "Authorization: [REDACTED]"],
    [
      "Bearer in JSON",
      '{"authorization":"Bearer abc.def-ghi","x":1}',
      '{"authorization":"[REDACTED]","x":1}',
    ],
    ["OpenAI key", "key sk-proj-AbC123xyz_-0 used", "key [REDACTED] used"],
    ["Anthropic key", "sk-ant-api03-abcdefgh", "[REDACTED]"],
    [
      "masked key in an OpenAI 401",
      "Incorrect API key provided: sk-abc***xyz. You can find your API key at",
      "Incorrect API key provided: [REDACTED]. You can find your API key at",
    ],
    ["Pilotfish app key", "caller pf_live_abcdef123", "caller [REDACTED]"],
    ["Google key", "AIzaSyA1234567890abcdefghijk", "[REDACTED]"],
    ["AWS access key id", "Credential=AKIAIOSFODNN7EXAMPLE/2024", "Credential=[REDACTED]/2024"],
  ];
  for (const [label, input, expected] of cases) {
    await t.step(label, () => assert.equal(redact(input), expected));
  }
});

Deno.test("createRedactor() keeps the parameter name of a secret in a query string", () => {
  const redact = createRedactor([]);
  assert.equal(
    redact("GET https://generativelanguage.googleapis.com/v1beta/models?key=secret123&alt=sse"),
    "GET https://generativelanguage.googleapis.com/v1beta/models?key=[REDACTED]&alt=sse",
  );
  assert.equal(
    redact("/x?a=1&api_key=abc&token=def"),
    "/x?a=1&api_key=[REDACTED]&token=[REDACTED]",
  );
});

Deno.test("createRedactor() leaves ordinary text alone", () => {
  const redact = createRedactor(["sk-configured-1234"]);
  const text = 'Provider "openai" answered HTTP 503: overloaded, task-skipped, risk-free';
  assert.equal(redact(text), text);
  // An env var's name is no key: a reload refused for it must say which.
  const missing = 'missing ["--allow-env=PF_NEWVAR_NAME"]';
  assert.equal(redact(missing), missing);
});

Deno.test("createRedactor() removes a configured secret that comes back base64-encoded, at any alignment", () => {
  const key = "sk-PROVIDERKEY-openai-AAAAAAAAAAAAAAAAAAAA";
  const redact = createRedactor([key]);
  for (const prefix of ["", "a", "ab", "api:", "Bearer "]) {
    const b64 = btoa(prefix + key);
    for (const form of [b64, b64.replaceAll("+", "-").replaceAll("/", "_")]) {
      const out = redact(`bad key ${form} end`);
      assert.match(out, /\[REDACTED\]/, prefix);
      // What is left of the encoding cannot be decoded back to the key.
      assert.ok(!out.includes(btoa(key).slice(4, 20)), `${prefix}: ${out}`);
    }
  }
  assert.equal(redact("plain text"), "plain text");
});

Deno.test("createRedactor(): no character that still carries the key's last bytes is left after its base64", () => {
  // 23 characters: the encoding's last quantum holds the key's final 2 bytes and padding.
  for (
    const key of ["sk-OPENAIKEY-SECRET-aa1", "sk-OPENAIKEY-SECRET-a14", "sk-OPENAIKEY-SECRET-1234"]
  ) {
    const redact = createRedactor([key]);
    for (const prefix of ["", "a", "ab"]) {
      const out = redact(`b64=${btoa(prefix + key)} end`);
      assert.match(out, /^b64=[A-Za-z0-9+/]{0,3}\[REDACTED\] end$/, `${prefix}${key}: ${out}`);
    }
  }
});

Deno.test("createRedactor({ encoded: false }) looks for the secrets as written only (the access log's)", () => {
  const key = "sk-PROVIDERKEY-openai-AAAAAAAAAAAAAAAAAAAA";
  const plain = createRedactor([key], { encoded: false });
  assert.equal(plain(`a ${key} b`), "a [REDACTED] b");
  assert.equal(plain(`a ${btoa(key)} b`), `a ${btoa(key)} b`);
});

Deno.test("redactJsonText() finds a secret spelled with JSON escapes; other bodies keep their bytes", () => {
  const key = "zz-configured-0123456789";
  const redact = createRedactor([key]);
  const escaped = [...key].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .join("");
  const body = `{"error":{"message":"bad key ${escaped}","code":401},"n":[1,"\\u00e9"]}`;
  const out = redactJsonText(body, redact);
  assert.deepEqual(JSON.parse(out), {
    error: { message: "bad key [REDACTED]", code: 401 },
    n: [1, "é"],
  });
  // Escaped but no secret, not JSON, or no escape at all: the text as `redact` left it.
  const harmless = `{ "message": "caf\\u00e9" }`;
  assert.equal(redactJsonText(harmless, redact), harmless);
  assert.equal(redactJsonText(`oops \\u0041 ${key}`, redact), "oops \\u0041 [REDACTED]");
  assert.equal(redactJsonText(`{"m":"${key}"}`, redact), `{"m":"[REDACTED]"}`);
  // A secret in a member name is found too.
  assert.doesNotMatch(redactJsonText(`{"${escaped}":1}`, redact), /zz-configured|\\u007a/);
});

Deno.test("createRedactor() keeps JSON text valid: a secret before an escaped quote leaves the backslash", () => {
  const redact = createRedactor([]);
  for (
    const value of [
      'Invalid header "Authorization: Bearer abcdef123" and url "https://h/x?key=QQQQ"',
      'see "https://x/?token=abc"',
      "why does Authorization: Bearer abc123",
    ]
  ) {
    // As in a log line or an upstream's error body: the value serialized inside JSON.
    const line = JSON.stringify({ error: { message: value }, nested: JSON.stringify({ value }) });
    const out = redact(line);
    const parsed = JSON.parse(out);
    assert.ok(!out.includes("abcdef123") && !out.includes("QQQQ") && !out.includes("=abc"), out);
    assert.match(parsed.error.message, /\[REDACTED\]/);
    JSON.parse(parsed.nested);
  }
});

Deno.test("createRedactor().holds() says whether the redactor would change a text, in one scan", () => {
  const key = "sk-PROVIDERKEY-openai-AAAAAAAAAAAAAAAAAAAA";
  const redact = createRedactor([key, "admin.token+42", "Case-Sensitive-Secret"]);
  const texts = [
    key,
    `prefix ${key} suffix`,
    btoa(`api:${key}`),
    btoa(`ab${key}`).replaceAll("+", "-").replaceAll("/", "_"),
    "admin.token+42",
    "adminXtoken+42", // the dot is no wildcard
    "case-sensitive-secret", // configured secrets match as written
    "Case-Sensitive-Secret",
    "Bearer abc.def",
    "bearer abc",
    "sk-live-123456",
    "SK-LIVE-123456",
    "pf_abcdef123",
    "PF_ENV_VAR_NAME",
    "AIzaSyA1234567890abcdefghijklmno",
    "AKIAABCDEFGHIJKLMNOP",
    "https://x.test/?api_key=abc&b=1",
    "application/json",
    "Go-http-client/1.1",
    "",
  ];
  for (const text of texts) {
    assert.equal(redact.holds!(text), redact(text) !== text, JSON.stringify(text));
  }
  assert.equal(createRedactor([]).holds!("nothing here"), false);
});

Deno.test("createRedactor({ bearer: false }) keeps a Bearer value (our own help text) and still takes keys out", () => {
  const redact = createRedactor(["sk-configured-0123456789"], { encoded: false, bearer: false });
  assert.equal(
    redact('send "Authorization: Bearer pf_\u2026" or Bearer <server.admin_token>'),
    'send "Authorization: Bearer pf_\u2026" or Bearer <server.admin_token>',
  );
  assert.equal(
    redact("model sk-configured-0123456789, key pf_abcdef123, ?key=AIzaSecret"),
    "model [REDACTED], key [REDACTED], ?key=[REDACTED]",
  );
  assert.equal(redact.holds!("Bearer abc.def"), false);
  assert.equal(redact.holds!("pf_abcdef123"), true);
});
