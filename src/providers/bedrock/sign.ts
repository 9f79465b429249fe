import type { AwsCredentials } from "./credentials.ts";

/**
 * SigV4 for Bedrock signing mode, with the maintained signer (`@smithy/signature-v4`, the
 * one the AWS SDK for JavaScript uses) rather than a hand-rolled canonical request.
 */

/** Where a Converse call goes, and what it is signed for. */
export interface BedrockTarget {
  /** The URL the request is sent to: `base_url` + the operation path. */
  readonly url: string;
  /** The host the signature covers. */
  readonly host: string;
  /** The path the signature covers, percent-encoded exactly as sent. */
  readonly path: string;
}

/**
 * The URL and the signed host/path of one Bedrock operation (`/model/{id}/converse`).
 *
 * When `base_url` is an AWS host (the regional default, a FIPS or VPC endpoint), that host
 * and the full path are signed: they are what AWS receives. Any other endpoint is a hop in
 * front of AWS (a test double, an egress proxy, another sidecar's `/bedrock` passthrough):
 * it forwards to the regional host with its own path prefix stripped, which is exactly
 * what an AWS SDK re-routed after signing relies on, so the signature covers
 * `bedrock-runtime.{region}.amazonaws.com` and the operation path alone.
 */
export function bedrockTarget(
  baseUrl: string,
  region: string,
  operationPath: string,
): BedrockTarget {
  const base = new URL(baseUrl);
  const basePath = base.pathname.replace(/\/$/, "");
  const url = `${base.origin}${basePath}${operationPath}`;
  if (isAwsHost(base.hostname)) {
    return { url, host: base.host, path: `${basePath}${operationPath}` };
  }
  return { url, host: `bedrock-runtime.${region}.amazonaws.com`, path: operationPath };
}

function isAwsHost(hostname: string): boolean {
  return /\.amazonaws\.com(\.cn)?$|\.api\.aws$/i.test(hostname);
}

export interface SignInput {
  readonly region: string;
  readonly credentials: AwsCredentials;
  readonly target: BedrockTarget;
  readonly method: "POST";
  /** Headers to sign and send (lower-case names); `host` is added here. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Defaults to now (tests pin it). */
  readonly signingDate?: Date;
}

type SmithySigning = {
  SignatureV4: typeof import("@smithy/signature-v4").SignatureV4;
  HttpRequest: typeof import("@smithy/protocol-http").HttpRequest;
  Sha256: ReturnType<typeof sha256Of>;
};

const sha256Of = (hash: typeof import("@smithy/hash-node").Hash) => hash.bind(null, "sha256");

let signing: Promise<SmithySigning> | null = null;
/** The signer's modules, loaded on first use: only signing mode needs them. */
function loadSigning(): Promise<SmithySigning> {
  signing ??= Promise.all([
    import("@smithy/signature-v4"),
    import("@smithy/protocol-http"),
    import("@smithy/hash-node"),
  ]).then(([sv4, http, hash]) => ({
    SignatureV4: sv4.SignatureV4,
    HttpRequest: http.HttpRequest,
    Sha256: sha256Of(hash.Hash),
  }));
  return signing;
}

/**
 * Sign a Bedrock request (service `bedrock`) and return the headers to send: the given
 * ones plus `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (temporary
 * credentials) and `authorization`. `host` is signed but not returned: `fetch` sets it
 * from the URL, which is the signed host whenever the request goes straight to AWS.
 */
export async function signBedrockRequest(input: SignInput): Promise<Record<string, string>> {
  const { SignatureV4, HttpRequest, Sha256 } = await loadSigning();
  const { accessKeyId, secretAccessKey, sessionToken } = input.credentials;
  const signer = new SignatureV4({
    service: "bedrock",
    region: input.region,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    sha256: Sha256,
  });
  const request = new HttpRequest({
    method: input.method,
    protocol: "https:",
    hostname: input.target.host,
    path: input.target.path,
    headers: { ...input.headers, host: input.target.host },
    body: input.body,
  });
  const signed = await signer.sign(
    request,
    input.signingDate ? { signingDate: input.signingDate } : {},
  );
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(signed.headers)) {
    if (name.toLowerCase() !== "host") out[name.toLowerCase()] = value;
  }
  return out;
}
