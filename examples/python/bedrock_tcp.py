import boto3

PROXY, REGION = "http://127.0.0.1:9002", "us-west-2"
AWS = f"https://bedrock-runtime.{REGION}.amazonaws.com"
session = boto3.Session(region_name=REGION)


def _route_to_proxy(request, **_):
    # before-send runs after signing: only the destination changes.
    if request.url.startswith(AWS):
        request.url = request.url.replace(AWS, f"{PROXY}/bedrock", 1)


session.events.register("before-send.bedrock-runtime", _route_to_proxy)
client = session.client("bedrock-runtime")
r = client.converse(
    modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    messages=[{"role": "user", "content": [{"text": "hello"}]}],
)
print(r["output"]["message"]["content"][0]["text"])
