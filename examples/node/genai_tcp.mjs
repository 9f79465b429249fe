import { GoogleGenAI } from "@google/genai";

// Gemini's own API through the /gemini passthrough: the daemon needs a `gemini` provider
// (GEMINI_API_KEY set for it). The key the SDK sends passes through as sent.
const ai = new GoogleGenAI({
  apiKey: process.env.GEMINI_API_KEY,
  httpOptions: { baseUrl: "http://127.0.0.1:9002/gemini" },
});
const r = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "Hello!" });
console.log(r.text);
