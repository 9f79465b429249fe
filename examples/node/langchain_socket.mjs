import { ChatOpenAI } from "@langchain/openai";
import { Agent } from "undici";

// `configuration` goes to the OpenAI client underneath, fetchOptions included.
const llm = new ChatOpenAI({
  model: "mock/echo",
  apiKey: "unused",
  configuration: {
    baseURL: "http://pilotfish/v1",
    fetchOptions: { dispatcher: new Agent({ connect: { socketPath: "/tmp/pilotfish.sock" } }) },
  },
});
const answer = await llm.invoke("Hello from LangChain over the socket!");
console.log(answer.content);
