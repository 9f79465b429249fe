import assert from "node:assert/strict";
import {
  createAwsCredentialProvider,
  DENO_CREDENTIAL_SOURCES,
  parseIni,
  resolveAwsCredentials,
} from "../../../src/providers/bedrock/credentials.ts";
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
  await t.step("web identity is reported as not supported", async () => {
    const err = await gatewayError(() =>
      resolveAwsCredentials(
        "aws",
        fakeSources({
          AWS_WEB_IDENTITY_TOKEN_FILE: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
          AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/app",
        }),
      )
    );
    assert.equal(err.status, 500);
    assert.match(err.message, /web-identity settings .* which Pilotfish does not support yet/);
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
