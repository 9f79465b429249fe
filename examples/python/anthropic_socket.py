import anthropic
import httpx2  # anthropic >= 2 builds on httpx2, not httpx

client = anthropic.Anthropic(
    base_url="http://pilotfish",
    api_key="unused",
    http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds="/tmp/pilotfish.sock")),
)
msg = client.messages.create(
    model="mock/echo",
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello over the socket!"}],
)
print(msg.content[0].text)
