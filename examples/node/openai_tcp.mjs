import OpenAI from "openai";

const client = new OpenAI({ baseURL: "http://127.0.0.1:9002/v1", apiKey: "unused" });
const r = await client.chat.completions.create({
  model: "mock/echo",
  messages: [{ role: "user", content: "Hello!" }],
});
console.log(r.choices[0].message.content); // Hello!
