/**
 * Bedrock signing with web identity (EKS IRSA), end to end and inside the sandbox: the
 * daemon started as `deno task start` starts it gets the token file and the STS host from
 * the planner, exchanges the token at a local STS, and signs Converse calls with what STS
 * issued (the fake Bedrock verifies the SigV4 signature with those credentials).
 */
import assert from "node:assert/strict";
import { startFakeBedrock, TEST_CREDENTIALS } from "../fakes/fake_bedrock.ts";
import { startFakeSts } from "../fakes/fake_sts.ts";
import { chatBody, startDaemon } from "../integration/daemon.ts";

const ROLE_ARN = "arn:aws:iam::123456789012:role/pilotfish-sidecar";
/**
 * The warm module cache: HOME moves (so no ~/.aws is found), and Deno's cache would move with
 * it, fetching every package again before the daemon logs a line (a 20 s wait under load).
 */
const DENO_DIR = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`}/deno`;
const TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwIn0.c2ln";

Deno.test("web identity: signed Converse calls with credentials from AssumeRoleWithWebIdentity", async () => {
  const bedrock = startFakeBedrock("us-west-2");
  const sts = startFakeSts();
  sts.expectToken(TOKEN);
  const home = await Deno.makeTempDir({ prefix: "pilotfish-irsa-" });
  const tokenFile = `${home}/serviceaccount/token`;
  await Deno.mkdir(`${home}/serviceaccount`);
  await Deno.writeTextFile(tokenFile, TOKEN);
  const d = await startDaemon(
    `
server:
  port: {{PORT}}
  socket: {{SOCKET}}
providers:
  bedrock:
    sign: true
    region: us-west-2
    endpoint: "${bedrock.url}"
routing:
  failover: { enabled: false }
`,
    {
      env: {
        HOME: home, // no ~/.aws/credentials there: web identity is the source
        DENO_DIR,
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ROLE_ARN: ROLE_ARN,
        AWS_ROLE_SESSION_NAME: "pilotfish-test",
        AWS_REGION: "us-west-2",
        AWS_ENDPOINT_URL_STS: sts.url,
      },
    },
  );
  try {
    for (const stream of [false, true]) {
      const res = await fetch(d.url("/v1/chat/completions"), {
        method: "POST",
        body: chatBody("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", { stream }),
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.match(text, /Hello/);
    }
    assert.equal(bedrock.requests.length, 2);
    for (const r of bedrock.requests) {
      assert.equal(r.signatureValid, true, "signed with the STS-issued credentials");
      assert.equal(r.headers.get("x-amz-security-token"), TEST_CREDENTIALS.sessionToken);
      assert.match(r.headers.get("authorization") ?? "", /Credential=AKIDEXAMPLETEST00001\//);
    }
    assert.equal(sts.requests.length, 1, "one exchange, cached until shortly before expiry");
    assert.deepEqual(sts.requests[0]?.params, {
      Action: "AssumeRoleWithWebIdentity",
      Version: "2011-06-15",
      RoleArn: ROLE_ARN,
      RoleSessionName: "pilotfish-test",
      WebIdentityToken: TOKEN,
    });
    assert.ok(!d.logs().includes(TOKEN), "the token never reaches the logs");
  } finally {
    await d.stop();
    await bedrock.close();
    await sts.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("web identity: an STS refusal is a clear 500 naming the role", async () => {
  const bedrock = startFakeBedrock("us-west-2");
  const sts = startFakeSts();
  sts.expectToken("a-different-token");
  const home = await Deno.makeTempDir({ prefix: "pilotfish-irsa-" });
  await Deno.writeTextFile(`${home}/token`, TOKEN);
  const d = await startDaemon(
    `server:\n  port: {{PORT}}\n  socket: {{SOCKET}}\nproviders:\n  bedrock:\n` +
      `    sign: true\n    region: us-west-2\n    endpoint: "${bedrock.url}"\n`,
    {
      env: {
        HOME: home,
        DENO_DIR,
        AWS_WEB_IDENTITY_TOKEN_FILE: `${home}/token`,
        AWS_ROLE_ARN: ROLE_ARN,
        AWS_ENDPOINT_URL_STS: sts.url,
      },
    },
  );
  try {
    const res = await fetch(d.url("/v1/chat/completions"), {
      method: "POST",
      body: chatBody("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    });
    const body = await res.json() as { error: { message: string } };
    assert.equal(res.status, 500);
    assert.match(
      body.error.message,
      new RegExp(`web identity \\(AWS_ROLE_ARN ${ROLE_ARN}\\) failed`),
    );
    assert.match(body.error.message, /STS answered 400 InvalidIdentityToken/);
    assert.equal(bedrock.requests.length, 0, "nothing unsigned went to Bedrock");
  } finally {
    await d.stop();
    await bedrock.close();
    await sts.close();
    await Deno.remove(home, { recursive: true });
  }
});
