import assert from "node:assert/strict";

/**
 * An in-flight stream keeps one copy of the prompt (the exchange's parsed request), not two:
 * the upstream request body, serialised for `fetch`, must be collectable once sent. It was
 * kept for the stream's whole life by the closures listening to the client's abort signal.
 */
Deno.test("an in-flight stream does not keep the upstream request body alive", async () => {
  const child = new URL("./stream_retention_child.ts", import.meta.url);
  const config = new URL("../deno.json", import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--allow-env",
      "--v8-flags=--expose-gc",
      "--config",
      config.pathname,
      child.pathname,
      "100000",
      "40",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const { perStream, promptBytes } = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    perStream: number;
    promptBytes: number;
  };
  // One copy of a 100 KB prompt plus ~16 KiB of stream state; a second copy would add 100 KB.
  assert.ok(
    perStream < 1.5 * promptBytes,
    `each in-flight stream keeps ${Math.round(perStream)} bytes for a ${promptBytes}-byte prompt`,
  );
});
