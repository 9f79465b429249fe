import assert from "node:assert/strict";
import { modelInJsonHead, modelOfBody, modelOfEvent } from "../../src/streaming/response_model.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("modelInJsonHead(): the top-level model near a JSON answer's head, never a string's text", () => {
  assert.equal(
    modelInJsonHead(bytes('{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06"}')),
    "gpt-4o-2024-08-06",
  );
  assert.equal(
    modelInJsonHead(bytes('{"id":"m","type":"message","role":"assistant","model":"claude-x"}')),
    "claude-x",
  );
  // A "model" inside a string is escaped: not a key.
  assert.equal(modelInJsonHead(bytes('{"instructions":"say \\"model\\": \\"no\\""}')), undefined);
  assert.equal(modelInJsonHead(bytes('{"model":"a\\u00e9"}')), "aé");
  // Only the head is read: a body whose model comes after 1 KiB has none (the routed one).
  assert.equal(modelInJsonHead(bytes(`{"x":"${"y".repeat(2000)}","model":"late"}`)), undefined);
  assert.equal(modelInJsonHead(bytes("not json")), undefined);
});

Deno.test("modelOfEvent(): a chunk's model, Anthropic's message_start, the Responses API's response.*", () => {
  assert.equal(modelOfEvent("openai_sse", { model: "m1", choices: [] }), "m1");
  assert.equal(modelOfEvent("chunks", { model: "m2" }), "m2");
  assert.equal(
    modelOfEvent("anthropic_sse", { type: "message_start", message: { model: "m3" } }),
    "m3",
  );
  assert.equal(modelOfEvent("anthropic_sse", { type: "ping" }), undefined);
  assert.equal(
    modelOfEvent("responses_sse", { type: "response.created", response: { model: "m4" } }),
    "m4",
  );
  assert.equal(modelOfEvent("openai_sse", { model: 4 }), undefined);
  assert.equal(modelOfBody({ model: "m5" }), "m5");
  assert.equal(modelOfBody({ model: "" }), undefined);
});
