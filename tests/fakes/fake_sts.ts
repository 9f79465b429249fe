/**
 * A local AWS STS that speaks `AssumeRoleWithWebIdentity` like the real one: the query
 * protocol (form-encoded POST, or GET with the same query), unsigned, answered in XML
 * (`AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials`) or with
 * an `ErrorResponse/Error/{Type,Code,Message}` document. It checks the token against the one
 * it was told to expect, and issues `TEST_CREDENTIALS` by default, so the fake Bedrock
 * verifies signatures made with what it hands out.
 */
import { TEST_CREDENTIALS } from "./fake_bedrock.ts";

export interface StsRecorded {
  readonly method: string;
  readonly contentType: string | null;
  /** The query parameters (form body or URL query). */
  readonly params: Record<string, string>;
}

export interface StsScript {
  /** Credentials to issue (default `TEST_CREDENTIALS`), valid for `ttlMs` (default 1 h). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  ttlMs?: number;
  /** An AWS error answer instead. */
  error?: { status: number; code: string; message: string };
  /** A 200 whose body is this text (a malformed answer). */
  raw?: string;
}

export interface FakeSts {
  readonly url: string;
  readonly requests: StsRecorded[];
  /** The token a caller must present; anything else is InvalidIdentityToken. */
  expectToken(token: string): void;
  script(next: StsScript): void;
  /** The clock the Expiration is computed from (the caller's test clock). */
  setNow(now: () => number): void;
  close(): Promise<void>;
}

const NS = "https://sts.amazonaws.com/doc/2011-06-15/";

const escapeXml = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");

export function errorXml(code: string, message: string): string {
  return `<ErrorResponse xmlns="${NS}">\n  <Error>\n    <Type>Sender</Type>\n` +
    `    <Code>${escapeXml(code)}</Code>\n    <Message>${escapeXml(message)}</Message>\n` +
    `  </Error>\n  <RequestId>${crypto.randomUUID()}</RequestId>\n</ErrorResponse>\n`;
}

export function credentialsXml(
  creds: { accessKeyId: string; secretAccessKey: string; sessionToken: string },
  expiration: Date,
  roleArn: string,
  sessionName: string,
): string {
  return `<AssumeRoleWithWebIdentityResponse xmlns="${NS}">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:default:app</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>${escapeXml(roleArn.replace(":role/", ":assumed-role/"))}/${escapeXml(sessionName)}</Arn>
      <AssumedRoleId>AROAEXAMPLEROLEID:${escapeXml(sessionName)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>${escapeXml(creds.sessionToken)}</SessionToken>
      <SecretAccessKey>${escapeXml(creds.secretAccessKey)}</SecretAccessKey>
      <Expiration>${expiration.toISOString()}</Expiration>
      <AccessKeyId>${escapeXml(creds.accessKeyId)}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>${crypto.randomUUID()}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
`;
}

export function startFakeSts(): FakeSts {
  const requests: StsRecorded[] = [];
  let expected = "";
  let current: StsScript = {};
  let now = Date.now;
  const xml = (status: number, body: string) =>
    new Response(body, { status, headers: { "content-type": "text/xml" } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const form = req.method === "POST" ? new URLSearchParams(await req.text()) : url.searchParams;
    const params = Object.fromEntries(form);
    requests.push({ method: req.method, contentType: req.headers.get("content-type"), params });
    if (params.Action !== "AssumeRoleWithWebIdentity" || params.Version !== "2011-06-15") {
      return xml(400, errorXml("InvalidAction", `Could not find operation ${params.Action}`));
    }
    for (const name of ["RoleArn", "RoleSessionName", "WebIdentityToken"]) {
      if (!params[name]) {
        return xml(400, errorXml("MissingParameter", `The request must contain ${name}`));
      }
    }
    if (params.WebIdentityToken !== expected) {
      return xml(
        400,
        errorXml(
          "InvalidIdentityToken",
          "Couldn't retrieve verification key from your identity provider",
        ),
      );
    }
    const s = current;
    if (s.error) return xml(s.error.status, errorXml(s.error.code, s.error.message));
    if (s.raw !== undefined) return xml(200, s.raw);
    return xml(
      200,
      credentialsXml(
        s.credentials ?? TEST_CREDENTIALS,
        new Date(now() + (s.ttlMs ?? 3600_000)),
        params.RoleArn!,
        params.RoleSessionName!,
      ),
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/`,
    requests,
    expectToken(token) {
      expected = token;
    },
    script(next) {
      current = next;
    },
    setNow(clock) {
      now = clock;
    },
    close: () => server.shutdown(),
  };
}
