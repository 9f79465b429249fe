/**
 * The README's Python recipes (examples/python), run with the venv's python (.ci/run creates
 * it from examples/python/requirements.txt) against the daemon as each recipe configures it.
 */
import assert from "node:assert/strict";
import { recipeOutput, startEmbeddedDaemon } from "../helpers/recipes.ts";
import { AWS_ENV, bedrockDaemon, degradedDaemon } from "./providers.ts";

Deno.test("Python recipes on the embedded default: openai and anthropic over TCP and the socket", async (t) => {
  const d = await startEmbeddedDaemon();
  try {
    const cases: [string, string][] = [
      ["python/openai_tcp.py", "Hello!"],
      ["python/openai_socket.py", "Hello over the socket!"],
      ["python/anthropic_socket.py", "Hello over the socket!"],
    ];
    for (const [file, expected] of cases) {
      await t.step(file, async () => {
        assert.equal((await recipeOutput(file, d)).trim(), expected);
      });
    }
  } finally {
    await d.stop();
  }
});

Deno.test("Python recipe: boto3 before-send re-route, over TCP and the socket", async (t) => {
  const f = await bedrockDaemon();
  try {
    for (const file of ["python/bedrock_tcp.py", "python/bedrock_socket.py"]) {
      await t.step(file, async () => {
        assert.equal((await recipeOutput(file, f.daemon, AWS_ENV)).trim(), "Hello from Bedrock");
        const sent = f.fake.requests.at(-1)!;
        assert.ok(sent.signatureValid, "the signature boto3 made for AWS still verifies");
        assert.equal(
          sent.rawPath,
          "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
        );
      });
    }
  } finally {
    await f.close();
  }
});

Deno.test("Python recipe: the degraded signal is detected and the client goes elsewhere", async () => {
  const f = await degradedDaemon();
  try {
    const out = await recipeOutput("python/degraded.py", f.daemon);
    assert.match(out, /^claude-sonnet-4-5\S* .+/);
    assert.equal(f.fake.requests.length, 1, "the fallback reached Anthropic once");
  } finally {
    await f.close();
  }
});
