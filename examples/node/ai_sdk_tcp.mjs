import { createOpenAI } from "@ai-sdk/openai";
import { generateText } from "ai";

const pilotfish = createOpenAI({ baseURL: "http://127.0.0.1:9002/v1", apiKey: "unused" });
// The default pilotfish(model) calls the Responses API (POST /v1/responses).
const { text } = await generateText({
  model: pilotfish("mock/echo"),
  prompt: "Hello from the AI SDK!",
});
console.log(text);
