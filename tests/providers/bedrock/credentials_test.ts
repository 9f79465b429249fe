import assert from "node:assert/strict";
import {
  createAwsCredentialProvider,
  credentialsFilePath,
  DENO_CREDENTIAL_SOURCES,
  parseIni,
  resolveAwsCredentials,
  webIdentitySettings,
  xmlText,
} from "../../../src/providers/bedrock/credentials.ts";
import { TEST_CREDENTIALS } from "../../fakes/fake_bedrock.ts";
import { type FakeSts, startFakeSts } from "../../fakes/fake_sts.ts";
import { closedPort } from "../../helpers/in_process.ts";
import { fakeSources, gatewayError, SANITIZE } from "./helpers.ts";

const KEYS = {
  AWS_ACCESS_KEY_ID: "AKIDENVEXAMPLE000001",
  AWS_SECRET_ACCESS_KEY: "env/secret/key/EXAMPLE",
};

const CREDENTIALS_FILE = `
# a comment
[default]
aws_access_key_id = AKIDDEFAULTEXAMPLE01
aws_secret_access_key = default/secret ; trailing comment

[work]
aws_access_key_id=AKIDWORKEXAMPLE00001
aws_secret_access_key=work/secret
aws_session_token = FwoGZXIvYXdzEWORKTOKEN
s3 =
  max_concurrent_requests = 20
region = eu-west-1

[sso-user]
sso_session = corp
sso_account_id = 123456789012
`;

Deno.test("resolveAwsCredentials() reads the environment first", async () => {
  const sources = fakeSources(
    { ...KEYS, AWS_SESSION_TOKEN: "FwoGZXIvYXdzENVTOKEN", HOME: "/home/app" },
    { "/home/app/.aws/credentials": CREDENTIALS_FILE },
  );
  assert.deepEqual(await resolveAwsCredentials("bedrock", sources), {
    accessKeyId: "AKIDENVEXAMPLE000001",
    secretAccessKey: "env/secret/key/EXAMPLE",
    sessionToken: "FwoGZXIvYXdzENVTOKEN",
    source: "environment",
  });
  assert.deepEqual(sources.reads, [], "the file is not read when the env has keys");
});

Deno.test("resolveAwsCredentials() falls back on ~/.aws/credentials, profile default", async () => {
  const sources = fakeSources(
    { HOME: "/home/app/", AWS_ACCESS_KEY_ID: "AKIDONLYHALF" },
    { "/home/app/.aws/credentials": CREDENTIALS_FILE },
  );
  assert.deepEqual(await resolveAwsCredentials("bedrock", sources), {
    accessKeyId: "AKIDDEFAULTEXAMPLE01",
    secretAccessKey: "default/secret",
    source: "/home/app/.aws/credentials",
  });
});

Deno.test("resolveAwsCredentials() honours AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE", async () => {
  const sources = fakeSources(
    { HOME: "/home/app", AWS_SHARED_CREDENTIALS_FILE: "~/creds.ini", AWS_PROFILE: "work" },
    { "/home/app/creds.ini": CREDENTIALS_FILE },
  );
  assert.deepEqual(await resolveAwsCredentials("bedrock", sources), {
    accessKeyId: "AKIDWORKEXAMPLE00001",
    secretAccessKey: "work/secret",
    sessionToken: "FwoGZXIvYXdzEWORKTOKEN",
    source: "/home/app/creds.ini",
  });
});

Deno.test("resolveAwsCredentials() reads a real credentials file from disk", SANITIZE, async () => {
  const dir = await Deno.makeTempDir({ prefix: "pf-aws-" });
  try {
    const path = `${dir}/credentials`;
    await Deno.writeTextFile(path, CREDENTIALS_FILE);
    const sources = {
      ...DENO_CREDENTIAL_SOURCES,
      env: (name: string) =>
        ({ AWS_SHARED_CREDENTIALS_FILE: path } as Record<string, string>)[name],
    };
    const creds = await resolveAwsCredentials("bedrock", sources);
    assert.equal(creds.accessKeyId, "AKIDDEFAULTEXAMPLE01");
    assert.equal(creds.source, path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveAwsCredentials() explains what is missing", async (t) => {
  await t.step("nothing anywhere: a 500 naming the variables to set", async () => {
    const err = await gatewayError(() => resolveAwsCredentials("aws", fakeSources({ HOME: "/h" })));
    assert.equal(err.status, 500);
    assert.equal(err.retryable, false);
    assert.equal(err.info.provider, "aws");
    assert.match(
      err.message,
      /^Bedrock signing is on for provider "aws" but no AWS credentials were found \(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
    assert.match(err.message, /AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN/);
  });
  await t.step("env vars the daemon may not read are named", async () => {
    const err = await gatewayError(() =>
      resolveAwsCredentials(
        "aws",
        fakeSources(KEYS, {}, { deniedEnv: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] }),
      )
    );
    assert.match(
      err.message,
      /may not read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \(not granted\)/,
    );
  });
  await t.step("a profile asked for by name that is not in the file", async () => {
    const err = await gatewayError(() =>
      resolveAwsCredentials(
        "aws",
        fakeSources({ HOME: "/h", AWS_PROFILE: "prod" }, {
          "/h/.aws/credentials": CREDENTIALS_FILE,
        }),
      )
    );
    assert.match(err.message, /AWS profile "prod" \(AWS_PROFILE\) is not in the credentials file/);
  });
  await t.step("a profile without static keys", async () => {
    const err = await gatewayError(() =>
      resolveAwsCredentials(
        "aws",
        fakeSources(
          { HOME: "/h", AWS_PROFILE: "sso-user" },
          { "/h/.aws/credentials": CREDENTIALS_FILE },
        ),
      )
    );
    assert.match(err.message, /uses sso_session, which Pilotfish does not support/);
  });
  await t.step("a credentials file the daemon may not read", async () => {
    const err = await gatewayError(() =>
      resolveAwsCredentials(
        "aws",
        fakeSources({ HOME: "/h" }, {}, { deniedFiles: ["/h/.aws/credentials"] }),
      )
    );
    assert.match(
      err.message,
      /cannot read the AWS credentials file "\/h\/\.aws\/credentials": NotCapable/,
    );
  });
});

Deno.test("createAwsCredentialProvider() resolves once and shares concurrent lookups", async () => {
  const sources = fakeSources({ HOME: "/h" }, { "/h/.aws/credentials": CREDENTIALS_FILE });
  const provider = createAwsCredentialProvider("bedrock", sources);
  const [a, b] = await Promise.all([provider.get(), provider.get()]);
  assert.equal(a, b);
  await provider.get();
  assert.equal(sources.reads.length, 1);
});

Deno.test("createAwsCredentialProvider() re-reads file credentials as they age or expire", async (t) => {
  const files: Record<string, string> = { "/h/.aws/credentials": CREDENTIALS_FILE };
  const sources = fakeSources({ HOME: "/h" }, files);
  const provider = createAwsCredentialProvider("bedrock", sources);
  await t.step("a rotated file is picked up after the recheck interval", async () => {
    assert.equal((await provider.get()).accessKeyId, "AKIDDEFAULTEXAMPLE01");
    files["/h/.aws/credentials"] = "[default]\naws_access_key_id=AKIDROTATED\n" +
      "aws_secret_access_key=rotated\n";
    sources.clock.now += 60_000;
    assert.equal((await provider.get()).accessKeyId, "AKIDDEFAULTEXAMPLE01", "still fresh");
    sources.clock.now += 5 * 60_000;
    assert.equal((await provider.get()).accessKeyId, "AKIDROTATED");
  });
  await t.step("temporary credentials are refreshed five minutes before they expire", async () => {
    const expires = new Date(sources.clock.now + 10 * 60_000).toISOString();
    files["/h/.aws/credentials"] = "[default]\naws_access_key_id=AKIDTEMP\n" +
      `aws_secret_access_key=temp\naws_session_token=tok\naws_expiration=${expires}\n`;
    provider.invalidate();
    const temp = await provider.get();
    assert.equal(temp.accessKeyId, "AKIDTEMP");
    assert.equal(temp.expiration?.toISOString(), expires);
    const reads = sources.reads.length;
    sources.clock.now += 4 * 60_000;
    await provider.get();
    assert.equal(sources.reads.length, reads, "not yet");
    sources.clock.now += 2 * 60_000;
    await provider.get();
    assert.equal(sources.reads.length, reads + 1, "within the margin: read again");
  });
  await t.step("invalidate() forces a new lookup", async () => {
    const reads = sources.reads.length;
    provider.invalidate();
    await provider.get();
    assert.equal(sources.reads.length, reads + 1);
  });
});

Deno.test("createAwsCredentialProvider() keeps env credentials and retries after a failure", async () => {
  const env: Record<string, string> = {};
  const sources = fakeSources(env);
  const provider = createAwsCredentialProvider("bedrock", sources);
  await gatewayError(() => provider.get());
  Object.assign(env, KEYS);
  assert.equal((await provider.get()).source, "environment", "a failure is not cached");
  delete env.AWS_ACCESS_KEY_ID;
  sources.clock.now += 24 * 3600_000;
  assert.equal((await provider.get()).accessKeyId, KEYS.AWS_ACCESS_KEY_ID, "env keys stay");
});

Deno.test("parseIni() reads the AWS credentials dialect", () => {
  const ini = parseIni(CREDENTIALS_FILE + "\n[default]\nextra = 1\n");
  assert.deepEqual(ini.get("default"), {
    aws_access_key_id: "AKIDDEFAULTEXAMPLE01",
    aws_secret_access_key: "default/secret",
    extra: "1",
  });
  assert.deepEqual(ini.get("work"), {
    aws_access_key_id: "AKIDWORKEXAMPLE00001",
    aws_secret_access_key: "work/secret",
    aws_session_token: "FwoGZXIvYXdzEWORKTOKEN",
    region: "eu-west-1",
  });
  assert.deepEqual([...ini.keys()], ["default", "work", "sso-user"]);
});

// --- Web identity (EKS IRSA): AssumeRoleWithWebIdentity against a local STS -------------

const TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
const ROLE_ARN = "arn:aws:iam::123456789012:role/pilotfish";
const JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln";

/** Sources with web identity pointed at `sts`, the token in `files`, and real fetch. */
function webIdentitySources(sts: FakeSts, env: Record<string, string> = {}) {
  const files: Record<string, string> = { [TOKEN_FILE]: `${JWT}\n` };
  const sources = fakeSources({
    AWS_WEB_IDENTITY_TOKEN_FILE: TOKEN_FILE,
    AWS_ROLE_ARN: ROLE_ARN,
    AWS_ENDPOINT_URL_STS: sts.url,
    ...env,
  }, files);
  sts.expectToken(JWT);
  sts.setNow(() => sources.clock.now);
  return { files, sources: { ...sources, fetch: (r: Request) => fetch(r) } };
}

Deno.test(
  "web identity: AssumeRoleWithWebIdentity is called as the AWS SDK calls it",
  SANITIZE,
  async () => {
    const sts = startFakeSts();
    try {
      const { sources } = webIdentitySources(sts, { AWS_ROLE_SESSION_NAME: "pilotfish-pod" });
      const creds = await resolveAwsCredentials("bedrock", sources);
      assert.equal(creds.accessKeyId, TEST_CREDENTIALS.accessKeyId);
      assert.equal(creds.secretAccessKey, TEST_CREDENTIALS.secretAccessKey);
      assert.equal(creds.sessionToken, TEST_CREDENTIALS.sessionToken);
      assert.equal(creds.expiration?.getTime(), sources.clock.now + 3600_000);
      assert.equal(creds.source, `web identity (${ROLE_ARN})`);
      assert.equal(sts.requests.length, 1);
      const [sent] = sts.requests;
      assert.equal(sent?.method, "POST");
      assert.equal(sent?.contentType, "application/x-www-form-urlencoded; charset=utf-8");
      assert.deepEqual(sent?.params, {
        Action: "AssumeRoleWithWebIdentity",
        Version: "2011-06-15",
        RoleArn: ROLE_ARN,
        RoleSessionName: "pilotfish-pod",
        WebIdentityToken: JWT,
      });
    } finally {
      await sts.close();
    }
  },
);

Deno.test("web identity comes after env keys and the credentials file", SANITIZE, async () => {
  const sts = startFakeSts();
  try {
    const { sources } = webIdentitySources(sts, { ...KEYS });
    assert.equal((await resolveAwsCredentials("bedrock", sources)).source, "environment");
    const withFile = webIdentitySources(sts, { HOME: "/h" });
    withFile.files["/h/.aws/credentials"] = CREDENTIALS_FILE;
    assert.equal(
      (await resolveAwsCredentials("bedrock", withFile.sources)).source,
      "/h/.aws/credentials",
    );
    assert.equal(sts.requests.length, 0);
  } finally {
    await sts.close();
  }
});

Deno.test(
  "web identity: refreshed five minutes before Expiration, with the current token",
  SANITIZE,
  async () => {
    const sts = startFakeSts();
    try {
      const { sources, files } = webIdentitySources(sts);
      const provider = createAwsCredentialProvider("bedrock", sources);
      const first = await provider.get();
      assert.equal(sts.requests.length, 1);
      // A default session name like the SDK's, fixed per exchange.
      assert.equal(
        sts.requests[0]?.params.RoleSessionName,
        `aws-sdk-js-session-${sources.clock.now}`,
      );

      sources.clock.now += 54 * 60_000;
      assert.equal(await provider.get(), first, "six minutes left: still cached");
      assert.equal(sts.requests.length, 1);

      // The kubelet rotated the token; the refresh must present the new one.
      const rotated = `${JWT}.rotated`;
      files[TOKEN_FILE] = rotated;
      sts.expectToken(rotated);
      sts.script({
        credentials: {
          accessKeyId: "ASIAREFRESHED0000001",
          secretAccessKey: "s2",
          sessionToken: "t2",
        },
      });
      sources.clock.now += 2 * 60_000;
      const second = await provider.get();
      assert.equal(second.accessKeyId, "ASIAREFRESHED0000001", "four minutes left: refreshed");
      assert.equal(sts.requests.length, 2);
      assert.equal(sts.requests[1]?.params.WebIdentityToken, rotated);
    } finally {
      await sts.close();
    }
  },
);

Deno.test(
  "web identity: a failed early refresh keeps the unexpired credentials, then fails",
  SANITIZE,
  async () => {
    const sts = startFakeSts();
    try {
      const { sources } = webIdentitySources(sts);
      const provider = createAwsCredentialProvider("bedrock", sources);
      const first = await provider.get();
      sts.script({ error: { status: 503, code: "ServiceUnavailable", message: "try later" } });
      sources.clock.now += 57 * 60_000;
      assert.equal(await provider.get(), first, "three minutes left: the old ones still sign");
      sources.clock.now += 4 * 60_000;
      const err = await gatewayError(() => provider.get());
      assert.match(err.message, /STS answered 503 ServiceUnavailable: try later/);
      sts.script({});
      assert.equal((await provider.get()).accessKeyId, TEST_CREDENTIALS.accessKeyId, "recovers");
    } finally {
      await sts.close();
    }
  },
);

Deno.test(
  "web identity: every failure is a clear 500 naming the role, never the token",
  SANITIZE,
  async (t) => {
    const sts = startFakeSts();
    const check = (err: Error, pattern: RegExp) => {
      assert.match(
        err.message,
        new RegExp(
          `^Bedrock signing for provider "aws": web identity \\(AWS_ROLE_ARN ${ROLE_ARN}\\) failed: `,
        ),
      );
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes(JWT), "the token never appears in a message");
    };
    try {
      await t.step("STS rejects the token", async () => {
        const { sources } = webIdentitySources(sts);
        sts.expectToken("another-token");
        const err = await gatewayError(() => resolveAwsCredentials("aws", sources));
        assert.equal(err.status, 500);
        assert.equal(err.retryable, false);
        check(err, /STS answered 400 InvalidIdentityToken: Couldn't retrieve verification key/);
      });
      await t.step("STS denies the role (entities decoded)", async () => {
        const { sources } = webIdentitySources(sts);
        sts.script({
          error: {
            status: 403,
            code: "AccessDenied",
            message: 'Not authorized to perform "sts:AssumeRoleWithWebIdentity"',
          },
        });
        check(
          await gatewayError(() => resolveAwsCredentials("aws", sources)),
          /STS answered 403 AccessDenied: Not authorized to perform "sts:AssumeRoleWithWebIdentity"/,
        );
        sts.script({});
      });
      await t.step("a 200 without credentials", async () => {
        const { sources } = webIdentitySources(sts);
        sts.script({ raw: "<html>captive portal</html>" });
        check(
          await gatewayError(() => resolveAwsCredentials("aws", sources)),
          /STS answered without AssumeRoleWithWebIdentityResult\/Credentials/,
        );
        sts.script({});
      });
      await t.step("STS unreachable", async () => {
        const { sources } = webIdentitySources(sts, {
          AWS_ENDPOINT_URL_STS: `http://127.0.0.1:${closedPort()}/`,
        });
        check(
          await gatewayError(() => resolveAwsCredentials("aws", sources)),
          /STS at http:\/\/127\.0\.0\.1:\d+ could not be reached: /,
        );
      });
      await t.step("the token file is missing, not granted or empty", async () => {
        const missing = webIdentitySources(sts);
        delete missing.files[TOKEN_FILE];
        check(
          await gatewayError(() => resolveAwsCredentials("aws", missing.sources)),
          /cannot read the token file "\/var\/run\/secrets\/eks\.amazonaws\.com\/serviceaccount\/token" \(AWS_WEB_IDENTITY_TOKEN_FILE\): no such file$/,
        );
        const denied = fakeSources(
          { AWS_WEB_IDENTITY_TOKEN_FILE: TOKEN_FILE, AWS_ROLE_ARN: ROLE_ARN },
          {},
          { deniedFiles: [TOKEN_FILE] },
        );
        check(
          await gatewayError(() => resolveAwsCredentials("aws", denied)),
          /the daemon may not read it \(not granted\)$/,
        );
        const empty = webIdentitySources(sts);
        empty.files[TOKEN_FILE] = "\n";
        check(await gatewayError(() => resolveAwsCredentials("aws", empty.sources)), /is empty$/);
      });
      assert.ok(sts.requests.every((r) => r.params.WebIdentityToken !== undefined));
    } finally {
      await sts.close();
    }
  },
);

Deno.test("webIdentitySettings() picks the STS endpoint like the AWS SDKs", () => {
  const settings = (env: Record<string, string>) =>
    webIdentitySettings(
      (n) => ({ AWS_WEB_IDENTITY_TOKEN_FILE: "/t", AWS_ROLE_ARN: ROLE_ARN, ...env })[n],
      7,
    );
  assert.equal(settings({})?.stsUrl, "https://sts.us-east-1.amazonaws.com/");
  assert.equal(settings({})?.sessionName, "aws-sdk-js-session-7");
  assert.equal(
    settings({ AWS_REGION: "eu-west-1" })?.stsUrl,
    "https://sts.eu-west-1.amazonaws.com/",
  );
  assert.equal(
    settings({ AWS_DEFAULT_REGION: "ap-south-1" })?.stsUrl,
    "https://sts.ap-south-1.amazonaws.com/",
  );
  assert.equal(
    settings({ AWS_REGION: "eu-west-1", AWS_STS_REGIONAL_ENDPOINTS: "legacy" })?.stsUrl,
    "https://sts.amazonaws.com/",
  );
  assert.equal(
    settings({ AWS_REGION: "af-south-1", AWS_STS_REGIONAL_ENDPOINTS: "legacy" })?.stsUrl,
    "https://sts.af-south-1.amazonaws.com/",
    "regions newer than the global endpoint stay regional",
  );
  assert.equal(
    settings({ AWS_REGION: "cn-north-1" })?.stsUrl,
    "https://sts.cn-north-1.amazonaws.com.cn/",
  );
  assert.equal(
    settings({ AWS_ENDPOINT_URL_STS: "http://127.0.0.1:4566" })?.stsUrl,
    "http://127.0.0.1:4566",
  );
  assert.equal(webIdentitySettings((n) => ({ AWS_ROLE_ARN: ROLE_ARN })[n], 0), null);
});

Deno.test("credentialsFilePath() is the lookup the permission plan grants", () => {
  const path = (env: Record<string, string>) => credentialsFilePath((n) => env[n]);
  assert.equal(path({ HOME: "/home/nonroot" }), "/home/nonroot/.aws/credentials");
  assert.equal(path({ HOME: "/h/", AWS_SHARED_CREDENTIALS_FILE: "~/creds" }), "/h/creds");
  assert.equal(
    path({ AWS_SHARED_CREDENTIALS_FILE: "/etc/pilotfish/aws/credentials" }),
    "/etc/pilotfish/aws/credentials",
  );
  assert.equal(path({}), null);
});

Deno.test("xmlText() reads STS's flat XML and decodes only the predefined entities", () => {
  const xml =
    '<A><Message xmlns="x">a &lt;b&gt; &amp;amp; &quot;c&quot; &#65;&#x42; &foo;</Message></A>';
  assert.equal(xmlText(xml, "Message"), 'a <b> &amp; "c" AB &foo;');
  assert.equal(xmlText(xml, "Missing"), null);
  assert.equal(xmlText("<Credentials><X>1</X></Credentials>", "Credentials", false), "<X>1</X>");
});
