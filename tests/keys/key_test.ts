import assert from "node:assert/strict";
import {
  dropUserAppKeys,
  generateKey,
  hashKey,
  keyHint,
  periodClock,
  periodsAt,
  presentedKey,
  toMicros,
} from "../../src/keys/key.ts";

Deno.test("generateKey() is pf_ + 256 random bits, never repeating", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const k = generateKey();
    assert.match(k, /^pf_[A-Za-z0-9_-]{43}$/);
    seen.add(k);
  }
  assert.equal(seen.size, 1000);
});

Deno.test("hashKey() is SHA-256 hex; keyHint() shows only the ends", () => {
  assert.equal(
    hashKey("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(keyHint("pf_abcdefghijklmnop"), "pf_…mnop");
  // A static key's own start is secret; a short one shows nothing of itself.
  assert.equal(keyHint("static-secret-key-0123456789"), "…6789");
  assert.equal(keyHint("short-key-12"), "…");
});

Deno.test("presentedKey(): the key header first, then a bearer that is an app key", () => {
  const h = (o: Record<string, string>) => (n: string) => o[n] ?? null;
  const isApp = (v: string) => v.startsWith("pf_");
  const hdrs = ["x-pilotfish-app-key"];
  assert.deepEqual(presentedKey(h({ authorization: "Bearer pf_x" }), hdrs, isApp), {
    value: "pf_x",
    header: "authorization",
  });
  assert.equal(presentedKey(h({ authorization: "Bearer sk-provider" }), hdrs, isApp), null);
  assert.deepEqual(
    presentedKey(h({ authorization: "Bearer sk-p", "x-pilotfish-app-key": " pf_y " }), hdrs, isApp),
    { value: "pf_y", header: "x-pilotfish-app-key" },
  );
  assert.equal(presentedKey(h({ "x-pilotfish-app-key": "  " }), hdrs, isApp), null);
  // Anthropic's SDKs send their key as x-api-key: an app key there counts; a provider key not.
  assert.deepEqual(presentedKey(h({ "x-api-key": "pf_z" }), hdrs, isApp), {
    value: "pf_z",
    header: "x-api-key",
  });
  assert.equal(presentedKey(h({ "x-api-key": "sk-ant-provider" }), hdrs, isApp), null);
  // Google's SDKs: x-goog-api-key, or ?key= (a Gemini key there is the client's own).
  assert.deepEqual(presentedKey(h({ "x-goog-api-key": "pf_g" }), hdrs, isApp), {
    value: "pf_g",
    header: "x-goog-api-key",
  });
  assert.deepEqual(presentedKey(h({}), hdrs, isApp, "?alt=sse&key=pf_q"), {
    value: "pf_q",
    header: "?key",
  });
  assert.equal(presentedKey(h({}), hdrs, isApp, "?key=AIza-provider"), null);
});

Deno.test("periodsAt(): UTC day and month, and when each resets", () => {
  const p = periodsAt(Date.UTC(2028, 1, 29, 23, 59, 59, 999)); // leap day
  assert.deepEqual(p, {
    day: "2028-02-29",
    month: "2028-02",
    dayResetsAt: Date.UTC(2028, 2, 1),
    monthResetsAt: Date.UTC(2028, 2, 1),
  });
  const dec = periodsAt(Date.UTC(2026, 11, 31, 12));
  assert.equal(dec.monthResetsAt, Date.UTC(2027, 0, 1));
  assert.equal(toMicros(0.1 + 0.2), 300_000);
  assert.equal(toMicros(0.000_001_4), 1);
});

Deno.test("periodClock() agrees with periodsAt() across day boundaries and clock steps back", () => {
  const clock = periodClock();
  const times = [
    Date.UTC(2026, 0, 31, 23, 59, 59, 999),
    Date.UTC(2026, 1, 1),
    Date.UTC(2026, 1, 1, 12),
    Date.UTC(2026, 0, 31, 10), // stepped back
    Date.UTC(2026, 1, 2),
  ];
  for (const t of times) assert.deepEqual(clock(t), periodsAt(t), new Date(t).toISOString());
});

Deno.test("dropUserAppKeys() drops a user that holds a minted key, and nothing else", () => {
  const key = generateKey();
  const body = { user: key, metadata: { user_id: `a/${key}`, other: 1 }, model: "m" };
  dropUserAppKeys(body);
  assert.deepEqual(body, { metadata: { other: 1 }, model: "m" });
  for (const user of ["pf_short", `${key}x`, `x${key}`, "alice"]) {
    const kept: Record<string, unknown> = { user, metadata: { user_id: user } };
    dropUserAppKeys(kept);
    assert.deepEqual(kept, { user, metadata: { user_id: user } }, user);
  }
  for (const other of [null, "text", [key], { metadata: null }]) dropUserAppKeys(other);
});
