import { createOpenAI } from "@ai-sdk/openai";
import { generateText } from "ai";

const pilotfish = createOpenAI({ baseURL: "http://127.0.0.1:9002/v1", apiKey: "unused" });
// .chat(): Chat Completions. The default pilotfish(model) calls the Responses API, which
// Pilotfish does not serve yet.
const { text } = await generateText({
  model: pilotfish.chat("mock/echo"),
  prompt: "Hello from the AI SDK!",
});
console.log(text);
