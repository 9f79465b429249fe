import boto3
import httpx
from botocore.awsrequest import AWSResponse

REGION = "us-west-2"
AWS = f"https://bedrock-runtime.{REGION}.amazonaws.com"
uds = httpx.Client(transport=httpx.HTTPTransport(uds="/tmp/pilotfish.sock"))


class _Raw:  # what botocore reads an AWSResponse body from
    def __init__(self, content):
        self._content = content

    def stream(self, **_):
        yield self._content


def _send_over_socket(request, **_):
    # A before-send handler may answer the request itself: send the signed request over
    # the socket (non-streaming calls).
    url = request.url.replace(AWS, "http://pilotfish/bedrock", 1)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    r = uds.request(request.method, url, headers=headers, content=request.body)
    return AWSResponse(url, r.status_code, r.headers, _Raw(r.content))


session = boto3.Session(region_name=REGION)
session.events.register("before-send.bedrock-runtime", _send_over_socket)
client = session.client("bedrock-runtime")
r = client.converse(
    modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    messages=[{"role": "user", "content": [{"text": "hello"}]}],
)
print(r["output"]["message"]["content"][0]["text"])
