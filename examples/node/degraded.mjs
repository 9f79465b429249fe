// Needs the daemon started with features.circuit_breaker.enabled: true (else a plain 502).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: "http://127.0.0.1:9002/v1", apiKey: "unused", maxRetries: 0 });
const messages = [{ role: "user", content: "Hello!" }];
let r;
try {
  r = await client.chat.completions.create({ model: "openai/gpt-4o", messages });
} catch (err) {
  if (
    err instanceof OpenAI.APIError && err.status === 503 &&
    String(err.message).includes("[LLM_PROXY_PROVIDER_DEGRADED]")
  ) {
    // Pilotfish says the provider is degraded: go elsewhere instead of retrying.
    r = await client.chat.completions.create({ model: "anthropic/claude-sonnet-4-5", messages });
  } else throw err;
}
console.log(r.model, r.choices[0].message.content);
