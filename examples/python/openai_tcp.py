from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:9002/v1", api_key="unused")
r = client.chat.completions.create(
    model="mock/echo", messages=[{"role": "user", "content": "Hello!"}]
)
print(r.choices[0].message.content)  # Hello!
