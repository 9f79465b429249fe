import { GoogleGenAI } from "@google/genai";
import { Agent, setGlobalDispatcher } from "undici";

// The SDK has no per-client fetch hook: route every fetch of this process to the socket.
setGlobalDispatcher(new Agent({ connect: { socketPath: "/tmp/pilotfish.sock" } }));
const ai = new GoogleGenAI({
  apiKey: process.env.GEMINI_API_KEY,
  httpOptions: { baseUrl: "http://pilotfish/gemini" },
});
const r = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "Hello!" });
console.log(r.text);
