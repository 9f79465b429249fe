import assert from "node:assert/strict";
import { parseMessagesRequest } from "../../src/schema/anthropic.ts";
import { toOpenAIChatRequest } from "../../src/translate/anthropic_to_openai.ts";
import { messagesParam, messagesText } from "../../src/translate/messages_fields.ts";

/** A system prompt, a tool call, and a turn answering it: chat's indices differ from these. */
const canonical = () =>
  toOpenAIChatRequest(
    parseMessagesRequest({
      model: "m",
      max_tokens: 10,
      system: "Be brief",
      messages: [
        { role: "user", content: "Weather?" },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Checking" },
            { type: "tool_use", id: "t1", name: "weather", input: {} },
            { type: "tool_use", id: "t2", name: "time", input: {} },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "t1", content: "sunny" },
            {
              type: "tool_result",
              tool_use_id: "t2",
              content: [{ type: "image", source: { type: "url", url: "ftp://x/t.png" } }],
            },
            { type: "text", text: "and this?" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "AA==" } },
          ],
        },
      ],
      tools: [{ name: "weather", input_schema: { type: "object" } }],
      stop_sequences: ["END"],
    }).body,
    "p",
  );

Deno.test("messagesParam() names the client's field behind a canonical one", () => {
  const body = canonical();
  // Chat: 0 system, 1 user, 2 assistant, 3 tool (t1), 4 tool (t2), 5 user [ftp, text, png].
  const cases: [string, string][] = [
    ["messages[0].content", "system"],
    ["messages[1].content", "messages[0].content"],
    ["messages[2].content", "messages[1].content"],
    ["messages[2].tool_calls[1].function.arguments", "messages[1].content[2].input"],
    ["messages[2].tool_calls[0].function.name", "messages[1].content[1].name"],
    ["messages[2].tool_calls[0].id", "messages[1].content[1].id"],
    ["messages[3].content", "messages[2].content[0].content"],
    ["messages[4].tool_call_id", "messages[2].content[1].tool_use_id"],
    ["messages[4].role", "messages[2].role"],
    // A tool result's image follows the results, in its turn's order.
    ["messages[5].content[0].image_url.url", "messages[2].content[1].content[0].source.url"],
    ["messages[5].content[1].text", "messages[2].content[2].text"],
    ["messages[5].content[2].image_url.url", "messages[2].content[3].source.data"],
    ["messages[5].content[9]", "messages[2].content"],
    ["tools[0].function.parameters", "tools[0].input_schema"],
    ["tools[0].function.parameters.properties.a", "tools[0].input_schema.properties.a"],
    ["tools[0].function.name", "tools[0].name"],
    ["tools[0].function", "tools[0]"],
    ["tools[0].type", "tools[0].type"],
    ["max_completion_tokens", "max_tokens"],
    ["max_tokens", "max_tokens"],
    ["stop", "stop_sequences"],
    ["user", "metadata.user_id"],
    ["parallel_tool_calls", "tool_choice.disable_parallel_tool_use"],
    ["tool_choice.function.name", "tool_choice.name"],
    ["response_format.json_schema.schema", "output_config.format.schema"],
    ["temperature", "temperature"],
  ];
  for (const [chat, client] of cases) assert.equal(messagesParam(chat, body), client, chat);
});

Deno.test("messagesParam(): without the translation's record (a stage's rewrite) indices stay", () => {
  const rewritten = { ...canonical() };
  assert.equal(messagesParam("messages[3].content", rewritten), "messages[3].content");
  assert.equal(messagesParam("messages[99].content", canonical()), "messages[99].content");
  assert.equal(messagesParam("tools[0].function.parameters", null), "tools[0].input_schema");
});

Deno.test("messagesText() rewrites the paths an error message names, and quoted chat-only names", () => {
  const body = canonical();
  assert.equal(
    messagesText(
      `"messages[5].content[2].image_url.url" must be a base64 data URL; see messages[3]`,
      "messages[5].content[2].image_url.url",
      body,
    ),
    `"messages[2].content[3].source.data" must be a base64 data URL; see messages[2].content[0]`,
  );
  assert.equal(
    messagesText(
      "Invalid 'stop': array too long. Expected an array with maximum length 4",
      "stop",
      body,
    ),
    "Invalid 'stop_sequences': array too long. Expected an array with maximum length 4",
  );
  // A bare English word is left alone; a bare chat-only identifier is not.
  assert.equal(messagesText("Models stop early", "stop", body), "Models stop early");
  assert.equal(
    messagesText("Unsupported parameter: max_completion_tokens.", "max_completion_tokens", body),
    "Unsupported parameter: max_tokens.",
  );
  assert.equal(
    messagesText(`"messages[1].role" must be "user"`, "messages[1].role", body),
    `"messages[0].role" must be "user"`,
  );
});
