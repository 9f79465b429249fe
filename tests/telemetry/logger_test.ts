import assert from "node:assert/strict";
import { createLogger, createRedactor, type LoggerOptions } from "../../src/telemetry/mod.ts";
import { lineWriter } from "../../src/telemetry/logger.ts";

const FIXED = new Date("2025-01-02T03:04:05.678Z");

function capture(level: LoggerOptions["level"], secrets: string[] = []) {
  const lines: string[] = [];
  const log = createLogger({
    level,
    redact: createRedactor(secrets),
    write: (line) => lines.push(line),
    now: () => FIXED,
  });
  return { log, lines };
}

Deno.test("createLogger() writes one JSON line per call", () => {
  const { log, lines } = capture("debug");
  log.info("request done", { status: 200, model: "gpt-4o" });
  log.debug("details");
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(line.endsWith("\n"));
    assert.equal(line.indexOf("\n"), line.length - 1, "exactly one line");
  }
  assert.deepEqual(JSON.parse(lines[0] ?? ""), {
    time: "2025-01-02T03:04:05.678Z",
    level: "info",
    msg: "request done",
    status: 200,
    model: "gpt-4o",
  });
  assert.deepEqual(JSON.parse(lines[1] ?? ""), {
    time: "2025-01-02T03:04:05.678Z",
    level: "debug",
    msg: "details",
  });
});

Deno.test("createLogger() keeps multi-line messages on one line", () => {
  const { log, lines } = capture("info");
  log.warn("first\nsecond", { detail: "a\r\nb" });
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.split("\n").length, 2);
  assert.equal(JSON.parse(lines[0] ?? "").msg, "first\nsecond");
});

Deno.test("createLogger() drops lines below the configured level", async (t) => {
  const levels = ["debug", "info", "warn", "error"] as const;
  for (const [i, min] of levels.entries()) {
    await t.step(min, () => {
      const { log, lines } = capture(min);
      for (const level of levels) log[level](level);
      assert.deepEqual(lines.map((l) => JSON.parse(l).level), levels.slice(i));
      for (const [j, level] of levels.entries()) assert.equal(log.enabled(level), j >= i);
    });
  }
});

Deno.test("createLogger() redacts secrets in messages and fields", () => {
  const { log, lines } = capture("info", ["configured-secret-1"]);
  log.error("upstream said: Incorrect API key provided: sk-abc***xyz", {
    authorization: "Bearer client-token-123",
    url: "https://x.example/v1?key=AIzaSecret",
    echoed: "configured-secret-1",
  });
  const line = lines[0] ?? "";
  for (const secret of ["sk-abc", "client-token-123", "AIzaSecret", "configured-secret-1"]) {
    assert.ok(!line.includes(secret), `"${secret}" leaked: ${line}`);
  }
  const parsed = JSON.parse(line);
  assert.equal(parsed.msg, "upstream said: Incorrect API key provided: [REDACTED]");
  assert.equal(parsed.authorization, "[REDACTED]");
  assert.equal(parsed.url, "https://x.example/v1?key=[REDACTED]");
  assert.equal(parsed.echoed, "[REDACTED]");
});

Deno.test("createLogger() writes errors as name and message only", () => {
  const { log, lines } = capture("info");
  const err = new TypeError("fetch failed", { cause: new Error("secret cause") });
  log.error("boom", { err });
  const parsed = JSON.parse(lines[0] ?? "");
  assert.deepEqual(parsed.err, { name: "TypeError", message: "fetch failed" });
  assert.ok(!(lines[0] ?? "").includes("secret cause"));
  assert.ok(!(lines[0] ?? "").includes("at "), "no stack trace");
});

Deno.test("createLogger() console format: one readable line, redacted", () => {
  const lines: string[] = [];
  const log = createLogger({
    level: "info",
    format: "console",
    redact: createRedactor(["configured-secret-1"]),
    write: (line) => lines.push(line),
    now: () => FIXED,
  });
  log.info("request", {
    request_id: "r-1",
    method: "POST",
    path: "/v1/chat/completions",
    status: 200,
    provider: "openai",
    model: "gpt-4o",
    duration_ms: 12.5,
    stream: true,
    outcome: "upstream_cut",
    error: new Error("reset by peer"),
  });
  log.warn("config warning", {
    warning: "server.colour: Unknown key\nsecond line",
    key: "configured-secret-1",
  });
  assert.equal(
    lines[0],
    '2025-01-02T03:04:05.678Z INFO  POST /v1/chat/completions 200 openai/gpt-4o 12.5ms stream=upstream_cut request_id=r-1 error="Error: reset by peer"\n',
  );
  assert.equal(
    lines[1],
    '2025-01-02T03:04:05.678Z WARN  config warning warning="server.colour: Unknown key\\nsecond line" key=[REDACTED]\n',
  );
});

Deno.test("createLogger() console format: a client's control bytes cannot forge a line or drive the terminal", () => {
  const lines: string[] = [];
  const log = createLogger({
    level: "info",
    format: "console",
    redact: createRedactor([]),
    write: (line) => lines.push(line),
    now: () => FIXED,
  });
  const forged = "m\nFAKE 2026-12-04T00:00:00.000Z INFO  POST /api/v1/keys 200 injected";
  log.info("request", {
    method: "POST",
    path: "/v1/chat/\rx",
    status: 200,
    provider: "other",
    model: forged,
    user: "\u001b[2J\u001b[31mX",
  });
  assert.equal(lines.length, 1);
  const line = lines[0]!;
  assert.equal(line.indexOf("\n"), line.length - 1, "one line");
  // deno-lint-ignore no-control-regex -- no control byte but the final newline
  assert.ok(!/[\x00-\x09\x0b-\x1f\x7f]/.test(line), JSON.stringify(line));
  assert.ok(line.includes("other/m\\nFAKE"), line);
  assert.ok(line.includes('user="\\u001b[2J\\u001b[31mX"'), line);
});

Deno.test("lineWriter() finishes short writes", () => {
  const got: number[] = [];
  // Takes at most 3 bytes a call, as a full pipe may.
  const out = {
    writeSync(b: Uint8Array) {
      const n = Math.min(3, b.byteLength);
      got.push(...b.subarray(0, n));
      return n;
    },
  };
  const write = lineWriter(out, { writeSync: () => assert.fail("no fallback expected") });
  write("hello, world\n");
  assert.equal(new TextDecoder().decode(new Uint8Array(got)), "hello, world\n");
});

Deno.test("lineWriter(): a broken stdout is said once on stderr, then lines are dropped, never thrown", () => {
  let calls = 0;
  const out = {
    writeSync(): number {
      calls++;
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    },
  };
  const said: string[] = [];
  const write = lineWriter(out, {
    writeSync: (b) => (said.push(new TextDecoder().decode(b)), b.byteLength),
  });
  const log = createLogger({ level: "info", redact: createRedactor([]), write });
  log.info("request", { status: 200 });
  log.info("request", { status: 200 });
  assert.equal(calls, 1, "stdout is not tried again once broken");
  assert.equal(said.length, 1);
  assert.match(said[0]!, /log output failed \(BrokenPipe: Broken pipe/);
  // stderr gone as well: still nothing thrown.
  const silent = lineWriter(out, {
    writeSync: () => {
      throw new Deno.errors.BrokenPipe("gone");
    },
  });
  silent("a line\n");
});
