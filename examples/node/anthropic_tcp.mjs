import Anthropic from "@anthropic-ai/sdk";

// POST /v1/messages: any configured provider can answer it, translated when needed.
const client = new Anthropic({ baseURL: "http://127.0.0.1:9002", apiKey: "unused" });
const msg = await client.messages.create({
  model: "mock/echo",
  max_tokens: 256,
  messages: [{ role: "user", content: "Hello!" }],
});
console.log(msg.content[0].text); // Hello!
