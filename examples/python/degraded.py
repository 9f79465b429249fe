# Needs the daemon started with features.circuit_breaker.enabled: true (else a plain 502).
from openai import APIStatusError, OpenAI

MARKER = "[LLM_PROXY_PROVIDER_DEGRADED]"
client = OpenAI(base_url="http://127.0.0.1:9002/v1", api_key="unused", max_retries=0)
msgs = [{"role": "user", "content": "Hello!"}]
try:
    r = client.chat.completions.create(model="openai/gpt-4o", messages=msgs)
except APIStatusError as e:
    if e.status_code == 503 and MARKER in str(e):
        # Pilotfish says the provider is degraded: go elsewhere instead of retrying.
        r = client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=msgs)
    else:
        raise
print(r.model, r.choices[0].message.content)
