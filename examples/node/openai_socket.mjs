import OpenAI from "openai";
import { Agent } from "undici";

// Every connection goes to the socket; "pilotfish" in the URL is only a name.
const client = new OpenAI({
  baseURL: "http://pilotfish/v1",
  apiKey: "unused",
  fetchOptions: { dispatcher: new Agent({ connect: { socketPath: "/tmp/pilotfish.sock" } }) },
});
const stream = await client.chat.completions.create({
  model: "mock/echo",
  stream: true,
  messages: [{ role: "user", content: "Hello over the socket!" }],
});
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
process.stdout.write("\n");
