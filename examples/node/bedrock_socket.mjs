import http from "node:http";
import net from "node:net";
import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";

// An agent whose connections go to the socket (an agent may return its socket).
class PilotfishSocket extends http.Agent {
  createConnection() {
    return net.createConnection("/tmp/pilotfish.sock");
  }
}
const inner = new NodeHttpHandler({ httpAgent: new PilotfishSocket({ keepAlive: true }) });
const client = new BedrockRuntimeClient({
  region: "us-west-2",
  requestHandler: {
    handle(request, options) { // runs after signing: only the destination changes
      request.protocol = "http:";
      request.hostname = "pilotfish";
      request.port = undefined;
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
client.destroy();
inner.destroy();
