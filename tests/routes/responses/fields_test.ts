/**
 * `/v1/responses` served through its canonical (chat) form: a 400 about a field inside
 * `input` — the gateway's own (a provider's translation) or an OpenAI-compatible upstream's —
 * names the item and field the client sent, at its own indices, in OpenAI's error shape.
 * @module
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import type { Handler } from "../../helpers/fake_fetch.ts";
import { CONFIG, gateway, UPSTREAM } from "../../pipeline/support.ts";

/** Bedrock too (it takes images as bytes or s3:// only); no call reaches it here. */
const FIELDS_CONFIG = CONFIG.replace(
  "routing:",
  `  bedrock: { sign: true, region: us-west-2, endpoint: "http://bedrock.test" }
routing:`,
);

/** The OpenAI-compatible upstream, refusing as OpenAI does (naming chat's field). */
const COMPAT_400: Handler = (url, init) => {
  if (!url.startsWith("http://up.test/v1/chat/completions")) return UPSTREAM(url, init);
  const body = JSON.parse(String(init.body));
  const error = (param: string, message: string) =>
    Response.json({ error: { message, type: "invalid_request_error", param, code: null } }, {
      status: 400,
    });
  for (const [i, m] of (body.messages as Record<string, unknown>[]).entries()) {
    const calls = (m.tool_calls ?? []) as { function: { arguments: string } }[];
    for (const [k, call] of calls.entries()) {
      if (call.function.arguments === "{bad") {
        const param = `messages[${i}].tool_calls[${k}].function.arguments`;
        return error(param, `Invalid '${param}': not valid JSON.`);
      }
    }
    if (!Array.isArray(m.content)) continue;
    for (const [j, part] of (m.content as Record<string, { url: string }>[]).entries()) {
      if (part.image_url?.url.startsWith("ftp:")) {
        const param = `messages[${i}].content[${j}].image_url.url`;
        return error(
          param,
          `Invalid '${param}'. Expected a valid URL, but got a value with an invalid format.`,
        );
      }
    }
  }
  return UPSTREAM(url, init);
};

const PNG = "data:image/png;base64,iVBORw0KGgo=";

/** A user turn: text, then an image. */
const withImage = (url: string) => ({
  role: "user" as const,
  content: [
    { type: "input_text" as const, text: "a" },
    { type: "input_image" as const, image_url: url, detail: "auto" as const },
  ],
});

/** Earlier turns that shift every chat index: a call, its output, then the image turn. */
const CONVERSATION = (url: string) => [
  { role: "user" as const, content: "Weather?" },
  { type: "function_call" as const, call_id: "c1", name: "weather", arguments: "{}" },
  { type: "function_call_output" as const, call_id: "c1", output: "sunny" },
  withImage(url),
];

Deno.test("/v1/responses: a 400 about a field inside input names the client's item and field", async (t) => {
  const gw = gateway({ config: FIELDS_CONFIG, handler: COMPAT_400 });
  const client = new OpenAI({
    baseURL: "http://gateway.test/v1",
    apiKey: "sk-client",
    maxRetries: 0,
    fetch: (input, init) => gw.request(String(input), init),
  });
  /** The client's 400 as the SDK reads it: OpenAI's envelope. */
  const refused = async (
    body: Record<string, unknown>,
  ): Promise<{ message: string; param: string }> => {
    const err = await client.responses.create(body as never).then(
      () => assert.fail("not refused"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    const error = err.error as Record<string, unknown>;
    assert.equal(error.type, "invalid_request_error");
    assert.equal(err.param, error.param);
    assert.equal(typeof error.message, "string");
    return { message: error.message as string, param: error.param as string };
  };
  const cases: [string, Record<string, unknown>, string, string][] = [
    [
      "Bedrock refuses an image URL it would have to fetch",
      { model: "bedrock/claude", input: [withImage("https://example.com/a.png")] },
      "input[0].content[1].image_url",
      '"input[0].content[1].image_url" must be a base64 data URL or an s3:// URL',
    ],
    [
      "Bedrock refuses an image type",
      { model: "bedrock/claude", input: [withImage("data:image/heic;base64,AAAA")] },
      "input[0].content[1].image_url",
      'Image type "image/heic" in input[0].content[1].image_url is not supported',
    ],
    [
      "after instructions, a call and its output: the image turn's own index",
      {
        model: "bedrock/claude",
        instructions: "Be brief.",
        input: CONVERSATION("https://example.com/a.png"),
      },
      "input[3].content[1].image_url",
      '"input[3].content[1].image_url" must be a base64 data URL',
    ],
    [
      "an OpenAI-compatible upstream's 400 on an image",
      { model: "up/gpt-up", instructions: "Be brief.", input: CONVERSATION("ftp://x/a.png") },
      "input[3].content[1].image_url",
      "Invalid 'input[3].content[1].image_url'. Expected a valid URL",
    ],
    [
      "an OpenAI-compatible upstream's 400 on a call's arguments",
      {
        model: "up/gpt-up",
        input: [
          { role: "user", content: "Weather?" },
          { type: "function_call", call_id: "c1", name: "weather", arguments: "{}" },
          { type: "function_call", call_id: "c2", name: "weather", arguments: "{bad" },
          { type: "function_call_output", call_id: "c1", output: "sunny" },
          { type: "function_call_output", call_id: "c2", output: "rainy" },
        ],
      },
      "input[2].arguments",
      "Invalid 'input[2].arguments': not valid JSON.",
    ],
    [
      "streamed: the same 400 before the stream",
      {
        model: "up/gpt-up",
        stream: true,
        instructions: "Be brief.",
        input: CONVERSATION("ftp://x/a.png"),
      },
      "input[3].content[1].image_url",
      "Invalid 'input[3].content[1].image_url'.",
    ],
    [
      "the client's own mistake keeps its indices (nothing to map back)",
      {
        model: "bedrock/claude",
        input: [{ role: "user", content: [{ type: "input_image", file_id: "file-1" }] }],
      },
      "input[0].content[0].image_url",
      '"input[0].content[0].image_url" is required',
    ],
  ];
  for (const [label, body, param, names] of cases) {
    await t.step(label, async () => {
      const error = await refused(body);
      assert.equal(error.param, param, error.message);
      assert.ok(error.message.includes(names), error.message);
      assert.doesNotMatch(error.message, /messages\[|"input" must|image_url\.url/);
    });
  }

  await t.step("good: the same conversation with a data URL is answered", async () => {
    const response = await client.responses.create({
      model: "up/gpt-up",
      instructions: "Be brief.",
      input: CONVERSATION(PNG),
    });
    assert.equal(response.status, "completed");
  });
});
