import Anthropic from "@anthropic-ai/sdk";
import { Agent } from "undici";

const client = new Anthropic({
  baseURL: "http://pilotfish",
  apiKey: "unused",
  fetchOptions: { dispatcher: new Agent({ connect: { socketPath: "/tmp/pilotfish.sock" } }) },
});
const stream = client.messages.stream({
  model: "mock/echo",
  max_tokens: 256,
  messages: [{ role: "user", content: "Hello over the socket!" }],
});
stream.on("text", (text) => process.stdout.write(text));
await stream.finalMessage();
process.stdout.write("\n");
