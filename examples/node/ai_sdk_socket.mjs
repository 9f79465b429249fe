import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";
import { Agent } from "undici";

const socket = new Agent({ connect: { socketPath: "/tmp/pilotfish.sock" } });
const pilotfish = createOpenAI({
  baseURL: "http://pilotfish/v1",
  apiKey: "unused",
  fetch: (url, init) => fetch(url, { ...init, dispatcher: socket }),
});
const result = streamText({
  model: pilotfish("mock/echo"),
  prompt: "Hello from the AI SDK over the socket!",
});
for await (const part of result.textStream) process.stdout.write(part);
process.stdout.write("\n");
