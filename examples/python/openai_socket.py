import httpx
from openai import OpenAI

# Every connection goes to the socket; "pilotfish" in the URL is only a name.
client = OpenAI(
    base_url="http://pilotfish/v1",
    api_key="unused",
    http_client=httpx.Client(transport=httpx.HTTPTransport(uds="/tmp/pilotfish.sock")),
)
stream = client.chat.completions.create(
    model="mock/echo",
    stream=True,
    messages=[{"role": "user", "content": "Hello over the socket!"}],
)
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="")
print()
