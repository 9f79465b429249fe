/**
 * The AWS SDK for JavaScript v3 Bedrock client as an app would use it beside Pilotfish: it
 * signs for the real regional endpoint, then a request handler re-routes the signed request
 * to `target` + `prefix` (the JS equivalent of boto3's `before-send` hook).
 */
import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { Hash } from "@smithy/hash-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { TEST_CREDENTIALS } from "./fake_bedrock.ts";

export function bedrockClientVia(
  target: string,
  opts: { prefix?: string; region?: string; tamper?: boolean } = {},
): BedrockRuntimeClient {
  const inner = new FetchHttpHandler();
  const url = new URL(target);
  const handler = {
    handle(request: HttpRequest, options?: { abortSignal?: AbortSignal }) {
      // After signing: only the destination changes, never what was signed.
      request.protocol = url.protocol;
      request.hostname = url.hostname;
      request.port = Number(url.port);
      request.path = `${opts.prefix ?? ""}${request.path}`;
      if (opts.tamper) {
        // One byte changed after signing: the signature must no longer verify.
        const text = typeof request.body === "string"
          ? request.body
          : new TextDecoder().decode(request.body as Uint8Array);
        request.body = text.replace("Hello", "Jello");
      }
      return inner.handle(request, options);
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  };
  return new BedrockRuntimeClient({
    region: opts.region ?? "us-west-2",
    credentials: TEST_CREDENTIALS,
    requestHandler: handler,
    maxAttempts: 1,
  });
}

/**
 * A Converse-style POST to `path` signed by hand for the real regional endpoint (as an SDK
 * would), `extra` headers signed too, `host` removed: the headers to send to Pilotfish's
 * `/bedrock` + `path`.
 */
export async function signedBedrockHeaders(
  path: string,
  body: string,
  extra: Record<string, string> = {},
): Promise<Record<string, string>> {
  const signed = await new SignatureV4({
    service: "bedrock",
    region: "us-west-2",
    credentials: TEST_CREDENTIALS,
    sha256: Hash.bind(null, "sha256"),
  }).sign(
    new HttpRequest({
      method: "POST",
      protocol: "https:",
      hostname: "bedrock-runtime.us-west-2.amazonaws.com",
      path,
      headers: {
        "content-type": "application/json",
        host: "bedrock-runtime.us-west-2.amazonaws.com",
        ...extra,
      },
      body,
    }),
  );
  const headers = { ...signed.headers };
  delete headers.host;
  return headers;
}
