import { ChatOpenAI } from "@langchain/openai";

const llm = new ChatOpenAI({
  model: "mock/echo",
  apiKey: "unused",
  configuration: { baseURL: "http://127.0.0.1:9002/v1" },
});
const answer = await llm.invoke("Hello from LangChain!");
console.log(answer.content);
