import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";

const inner = new FetchHttpHandler();
const client = new BedrockRuntimeClient({
  region: "us-west-2",
  requestHandler: {
    handle(request, options) { // runs after signing: only the destination changes
      request.protocol = "http:";
      request.hostname = "127.0.0.1";
      request.port = 9002;
      request.path = `/bedrock${request.path}`;
      return inner.handle(request, options);
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
  },
});
const r = await client.send(
  new ConverseCommand({
    modelId: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    messages: [{ role: "user", content: [{ text: "hello" }] }],
  }),
);
console.log(r.output.message.content[0].text);
