/**
 * The README's Node recipes (examples/node), run with node against the daemon as each recipe
 * configures it: the embedded default (mock/echo) or a provider pointed at a local fake.
 */
import assert from "node:assert/strict";
import { recipeOutput, startEmbeddedDaemon } from "../helpers/recipes.ts";
import {
  AWS_ENV,
  bedrockDaemon,
  degradedDaemon,
  GEMINI_CLIENT_KEY,
  geminiDaemon,
} from "./providers.ts";

Deno.test("Node recipes on the embedded default: SDKs over TCP and the Unix socket", async (t) => {
  const d = await startEmbeddedDaemon();
  try {
    // The socket recipes name the host "pilotfish", which no DNS resolves: they can only
    // have answered through the socket.
    const cases: [string, string][] = [
      ["node/openai_tcp.mjs", "Hello!"],
      ["node/openai_socket.mjs", "Hello over the socket!"],
      ["node/anthropic_tcp.mjs", "Hello!"],
      ["node/anthropic_socket.mjs", "Hello over the socket!"],
      ["node/langchain_tcp.mjs", "Hello from LangChain!"],
      ["node/langchain_socket.mjs", "Hello from LangChain over the socket!"],
      ["node/ai_sdk_tcp.mjs", "Hello from the AI SDK!"],
      ["node/ai_sdk_socket.mjs", "Hello from the AI SDK over the socket!"],
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

Deno.test("Node recipe: Google GenAI SDK through /gemini, over TCP and the socket", async (t) => {
  const f = await geminiDaemon();
  try {
    for (const file of ["node/genai_tcp.mjs", "node/genai_socket.mjs"]) {
      await t.step(file, async () => {
        const before = f.fake.requests.length;
        const out = await recipeOutput(file, f.daemon, { GEMINI_API_KEY: GEMINI_CLIENT_KEY });
        assert.equal(out.trim(), "Hello! How can I help you today?");
        const sent = f.fake.requests.at(-1)!;
        assert.equal(f.fake.requests.length, before + 1);
        assert.match(sent.path, /\/models\/gemini-2\.5-flash:generateContent$/);
        // Native passthrough: the SDK's own key reaches the provider as sent.
        assert.equal(sent.headers.get("x-goog-api-key"), GEMINI_CLIENT_KEY);
      });
    }
  } finally {
    await f.close();
  }
});

Deno.test("Node recipe: AWS SDK v3 re-routed after signing, over TCP and the socket", async (t) => {
  const f = await bedrockDaemon();
  try {
    for (const file of ["node/bedrock_tcp.mjs", "node/bedrock_socket.mjs"]) {
      await t.step(file, async () => {
        assert.equal((await recipeOutput(file, f.daemon, AWS_ENV)).trim(), "Hello from Bedrock");
        const sent = f.fake.requests.at(-1)!;
        assert.ok(sent.signatureValid, "the signature made for AWS still verifies");
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

Deno.test("Node recipe: the degraded signal is detected and the client goes elsewhere", async () => {
  const f = await degradedDaemon();
  try {
    const out = await recipeOutput("node/degraded.mjs", f.daemon);
    assert.match(out, /^claude-sonnet-4-5\S* .+/);
    assert.equal(f.fake.requests.length, 1, "the fallback reached Anthropic once");
  } finally {
    await f.close();
  }
});
