import { GatewayError } from "../../errors.ts";

/**
 * AWS credentials for Bedrock signing mode, resolved by the daemon itself from the sources
 * an AWS SDK would look at, in the same order:
 *
 * 1. env `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
 * 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `$HOME/.aws/credentials`),
 *    profile `AWS_PROFILE` or `default`, static keys only;
 * 3. web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
 *    (+ `AWS_ROLE_SESSION_NAME`), exchanged for temporary credentials with an unsigned STS
 *    `AssumeRoleWithWebIdentity` call (query API) to `AWS_ENDPOINT_URL_STS`, else the regional
 *    endpoint of `AWS_REGION`/`AWS_DEFAULT_REGION` (`AWS_STS_REGIONAL_ENDPOINTS=legacy`: the
 *    global one for the regions that had it). The token file is read again on every exchange:
 *    the kubelet rotates it.
 *
 * Profiles that assume a role, run a process or use SSO are reported as unsupported with a
 * message saying what to do instead. The permission planner (src/permissions/plan.ts) grants
 * exactly what this module reads, through `credentialsFilePath` and `webIdentitySettings`.
 * @module
 */

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** When temporary credentials stop working, if the source says. */
  readonly expiration?: Date;
  /**
   * Where they came from, for messages: "environment", the credentials file path, or
   * "web identity (<role arn>)".
   */
  readonly source: string;
}

/** What resolution reads; the real one is `DENO_CREDENTIAL_SOURCES`, tests pass their own. */
export interface CredentialSources {
  /** An env var, undefined when unset. May throw `Deno.errors.NotCapable` when not granted. */
  env(name: string): string | undefined;
  /** A file's text; throws `Deno.errors.NotFound` when it does not exist. */
  readTextFile(path: string): Promise<string>;
  now(): number;
  /** For the STS call of web identity; `globalThis.fetch` when absent. */
  fetch?: (request: Request) => Promise<Response>;
}

export const DENO_CREDENTIAL_SOURCES: CredentialSources = {
  env: (name) => Deno.env.get(name),
  readTextFile: (path) => Deno.readTextFile(path),
  now: Date.now,
  fetch: (request) => fetch(request),
};

/** Every env var resolution may read (the permission plan grants these). */
export const CREDENTIAL_ENV_VARS: readonly string[] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_PROFILE",
  "HOME",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_STS_REGIONAL_ENDPOINTS",
  "AWS_ENDPOINT_URL_STS",
];

/** Credentials are refreshed this long before they expire. */
const EXPIRY_MARGIN_MS = 5 * 60_000;
/** File credentials are read again after this long: tools rotate them in place. */
const FILE_RECHECK_MS = 5 * 60_000;
/** An STS exchange that takes longer fails (the request waiting on it gets the 500). */
const STS_TIMEOUT_MS = 10_000;

/** An env lookup as resolution sees it: empty or unreadable means unset. */
export type EnvRead = (name: string) => string | undefined;

/**
 * The shared credentials file resolution reads: `AWS_SHARED_CREDENTIALS_FILE` (`~/` is
 * HOME), else `$HOME/.aws/credentials`; null without either.
 */
export function credentialsFilePath(env: EnvRead): string | null {
  const home = env("HOME")?.replace(/\/$/, "");
  const configured = env("AWS_SHARED_CREDENTIALS_FILE");
  if (configured !== undefined) {
    if (!configured.startsWith("~/")) return configured;
    return home !== undefined ? `${home}/${configured.slice(2)}` : null;
  }
  return home !== undefined ? `${home}/.aws/credentials` : null;
}

/** Web identity as configured by the environment (what EKS IRSA injects). */
export interface WebIdentitySettings {
  readonly tokenFile: string;
  readonly roleArn: string;
  readonly sessionName: string;
  /** The STS endpoint the exchange is POSTed to. */
  readonly stsUrl: string;
}

/** Regions whose STS calls went to the global endpoint under `legacy` (as the AWS SDKs do). */
const LEGACY_GLOBAL_STS_REGIONS = new Set([
  "ap-northeast-1",
  "ap-south-1",
  "ap-southeast-1",
  "ap-southeast-2",
  "aws-global",
  "ca-central-1",
  "eu-central-1",
  "eu-north-1",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "sa-east-1",
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
]);

/**
 * Web identity settings, or null unless both `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`
 * are set. The session name defaults like the AWS SDK's (`aws-sdk-js-session-<ms>`), fixed
 * per lookup.
 */
export function webIdentitySettings(env: EnvRead, now: number): WebIdentitySettings | null {
  const tokenFile = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const roleArn = env("AWS_ROLE_ARN");
  if (tokenFile === undefined || roleArn === undefined) return null;
  return {
    tokenFile,
    roleArn,
    sessionName: env("AWS_ROLE_SESSION_NAME") ?? `aws-sdk-js-session-${now}`,
    stsUrl: stsEndpoint(env),
  };
}

function stsEndpoint(env: EnvRead): string {
  const override = env("AWS_ENDPOINT_URL_STS");
  if (override !== undefined) return override;
  const region = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? "us-east-1";
  const legacy = env("AWS_STS_REGIONAL_ENDPOINTS")?.toLowerCase() === "legacy";
  if (legacy && LEGACY_GLOBAL_STS_REGIONS.has(region)) return "https://sts.amazonaws.com/";
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://sts.${region}.${suffix}/`;
}

export interface AwsCredentialProvider {
  /** The current credentials; throws a 500-class GatewayError when there are none. */
  get(): Promise<AwsCredentials>;
  /** Forget the cached credentials (AWS said they expired or are unknown). */
  invalidate(): void;
}

/** Credentials that came from STS: kept until shortly before they expire, not rechecked. */
const fromSts = new WeakSet<AwsCredentials>();

/**
 * Resolve once, on first use, and keep the result until it is about to expire (file
 * credentials: also re-read every few minutes) or `invalidate()` is called. Concurrent
 * callers share one resolution. A failure is not cached: the next request looks again, so
 * credentials mounted after start are found; but when an early refresh fails while the
 * current temporary credentials still work, those are used until they expire. One provider
 * per config load.
 */
export function createAwsCredentialProvider(
  provider: string,
  sources: CredentialSources = DENO_CREDENTIAL_SOURCES,
): AwsCredentialProvider {
  let cached: { credentials: AwsCredentials; freshUntil: number } | null = null;
  let pending: Promise<AwsCredentials> | null = null;
  return {
    get() {
      if (cached !== null && sources.now() < cached.freshUntil) {
        return Promise.resolve(cached.credentials);
      }
      const stale = cached?.credentials;
      pending ??= resolveAwsCredentials(provider, sources).then((credentials) => {
        const now = sources.now();
        let freshUntil = credentials.source === "environment" || fromSts.has(credentials)
          ? Infinity
          : now + FILE_RECHECK_MS;
        if (credentials.expiration !== undefined) {
          const expires = credentials.expiration.getTime();
          // Credentials shorter-lived than the margin are refreshed half-way instead.
          const early = expires - EXPIRY_MARGIN_MS > now
            ? expires - EXPIRY_MARGIN_MS
            : now + (expires - now) / 2;
          freshUntil = Math.min(freshUntil, early);
        }
        cached = { credentials, freshUntil };
        return credentials;
      }, (err: unknown) => {
        if (stale?.expiration !== undefined && sources.now() < stale.expiration.getTime()) {
          return stale;
        }
        throw err;
      }).finally(() => {
        pending = null;
      });
      return pending;
    },
    invalidate() {
      cached = null;
    },
  };
}

/** One resolution through the chain; throws a GatewayError saying what is missing. */
export async function resolveAwsCredentials(
  provider: string,
  sources: CredentialSources,
): Promise<AwsCredentials> {
  const denied: string[] = [];
  const env = (name: string): string | undefined => {
    try {
      const v = sources.env(name)?.trim();
      return v === "" ? undefined : v;
    } catch {
      // Not granted to the daemon: reported below if nothing else is found.
      denied.push(name);
      return undefined;
    }
  };

  const accessKeyId = env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = env("AWS_SECRET_ACCESS_KEY");
  if (accessKeyId !== undefined && secretAccessKey !== undefined) {
    const sessionToken = env("AWS_SESSION_TOKEN");
    return {
      accessKeyId,
      secretAccessKey,
      ...(sessionToken !== undefined ? { sessionToken } : {}),
      source: "environment",
    };
  }

  const fromFile = await readCredentialsFile(provider, env, sources);
  if (fromFile !== null) return fromFile;

  const webIdentity = webIdentitySettings(env, sources.now());
  if (webIdentity !== null) return await assumeRoleWithWebIdentity(provider, webIdentity, sources);

  const unreadable = denied.length > 0
    ? `; the daemon may not read ${denied.join(", ")} (not granted)`
    : "";
  throw noCredentials(
    provider,
    `Bedrock signing is on for provider "${provider}" but no AWS credentials were found ` +
      `(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for temporary ` +
      `credentials, or provide a shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ` +
      `~/.aws/credentials, profile AWS_PROFILE or "default", or web identity: ` +
      `AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)${unreadable}`,
  );
}

/**
 * Exchange the web identity token for temporary credentials: STS `AssumeRoleWithWebIdentity`,
 * query protocol, unsigned (the token is the proof). Every failure names the role and what
 * went wrong, never the token.
 */
async function assumeRoleWithWebIdentity(
  provider: string,
  settings: WebIdentitySettings,
  sources: CredentialSources,
): Promise<AwsCredentials> {
  const fail = (why: string) =>
    noCredentials(
      provider,
      `Bedrock signing for provider "${provider}": web identity (AWS_ROLE_ARN ` +
        `${settings.roleArn}) failed: ${why}`,
    );
  let token: string;
  try {
    token = (await sources.readTextFile(settings.tokenFile)).trim();
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.NotCapable
      ? "the daemon may not read it (not granted)"
      : err instanceof Error
      ? err.name
      : String(err);
    throw fail(
      `cannot read the token file "${settings.tokenFile}" (AWS_WEB_IDENTITY_TOKEN_FILE): ${reason}`,
    );
  }
  if (token === "") throw fail(`the token file "${settings.tokenFile}" is empty`);

  let url: URL;
  try {
    url = new URL(settings.stsUrl);
  } catch {
    throw fail(`the STS endpoint "${settings.stsUrl}" (AWS_ENDPOINT_URL_STS) is not a URL`);
  }
  const body = new URLSearchParams({
    Action: "AssumeRoleWithWebIdentity",
    Version: "2011-06-15",
    RoleArn: settings.roleArn,
    RoleSessionName: settings.sessionName,
    WebIdentityToken: token,
  });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), STS_TIMEOUT_MS);
  let status: number;
  let text: string;
  try {
    const res = await (sources.fetch ?? fetch)(
      new Request(url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded; charset=utf-8",
          accept: "text/xml",
        },
        body: body.toString(),
        signal: controller.signal,
      }),
    );
    status = res.status;
    text = await res.text();
  } catch (err) {
    const why = controller.signal.aborted
      ? `no answer within ${STS_TIMEOUT_MS / 1000}s`
      : err instanceof Error
      ? firstLine(err.message)
      : String(err);
    throw fail(`STS at ${url.origin} could not be reached: ${why}`);
  } finally {
    clearTimeout(timer);
  }
  if (status < 200 || status > 299) {
    const code = xmlText(text, "Code");
    const message = xmlText(text, "Message");
    const detail = code !== null ? `${code}${message !== null ? `: ${message}` : ""}` : "";
    throw fail(`STS answered ${status}${detail !== "" ? ` ${detail}` : ""}`);
  }
  const result = xmlText(text, "AssumeRoleWithWebIdentityResult", false);
  const creds = result === null ? null : xmlText(result, "Credentials", false);
  const accessKeyId = creds === null ? null : xmlText(creds, "AccessKeyId");
  const secretAccessKey = creds === null ? null : xmlText(creds, "SecretAccessKey");
  const sessionToken = creds === null ? null : xmlText(creds, "SessionToken");
  const expiration = parseExpiration(
    (creds === null ? null : xmlText(creds, "Expiration")) ?? undefined,
  );
  if (
    accessKeyId === null || secretAccessKey === null || sessionToken === null || expiration === null
  ) {
    throw fail(
      "STS answered without AssumeRoleWithWebIdentityResult/Credentials " +
        "(AccessKeyId, SecretAccessKey, SessionToken, Expiration)",
    );
  }
  const credentials: AwsCredentials = {
    accessKeyId,
    secretAccessKey,
    sessionToken,
    expiration,
    source: `web identity (${settings.roleArn})`,
  };
  fromSts.add(credentials);
  return credentials;
}

/**
 * The text of the first `<tag>` element in `xml` (entities decoded unless `decode` is false,
 * for an element whose children are read next), or null. Enough for STS's flat, fixed
 * answers: no DTDs, no CDATA, nothing is expanded but the five predefined and numeric
 * character references.
 */
export function xmlText(xml: string, tag: string, decode = true): string | null {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`).exec(xml);
  if (m === null) return null;
  const raw = (m[1] ?? "").trim();
  return decode ? decodeXmlEntities(raw) : raw;
}

const XML_ENTITIES: Record<string, string> = {
  lt: "<",
  gt: ">",
  amp: "&",
  quot: '"',
  apos: "'",
};

function decodeXmlEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith("#")) {
      const code = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return XML_ENTITIES[ref] ?? whole;
  });
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0] ?? "";
}

/**
 * Static keys from the shared credentials file. null when the file or the `default`
 * profile does not exist; an error when a profile was asked for by name and is missing, or
 * when the profile exists but gets its credentials some way we do not support.
 */
async function readCredentialsFile(
  provider: string,
  env: EnvRead,
  sources: CredentialSources,
): Promise<AwsCredentials | null> {
  const path = credentialsFilePath(env);
  if (path === null) return null;
  let text: string;
  try {
    text = await sources.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw noCredentials(
      provider,
      `Bedrock signing for provider "${provider}" cannot read the AWS credentials file ` +
        `"${path}": ${err instanceof Error ? err.name : String(err)}`,
    );
  }
  const named = env("AWS_PROFILE");
  const profileName = named ?? "default";
  const profile = parseIni(text).get(profileName);
  if (profile === undefined) {
    if (named === undefined) return null;
    throw noCredentials(
      provider,
      `AWS profile "${profileName}" (AWS_PROFILE) is not in the credentials file "${path}"`,
    );
  }
  const accessKeyId = profile.aws_access_key_id;
  const secretAccessKey = profile.aws_secret_access_key;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    const how = ["role_arn", "credential_process", "sso_session", "sso_start_url"]
      .filter((k) => profile[k] !== undefined);
    throw noCredentials(
      provider,
      `AWS profile "${profileName}" in "${path}" has no aws_access_key_id and ` +
        `aws_secret_access_key${
          how.length > 0 ? ` (it uses ${how.join(", ")}, which Pilotfish does not support)` : ""
        }; Bedrock signing needs static keys there or in the environment`,
    );
  }
  const sessionToken = profile.aws_session_token ?? profile.aws_security_token;
  const expiration = parseExpiration(profile.aws_expiration ?? profile.x_security_token_expires);
  return {
    accessKeyId,
    secretAccessKey,
    ...(sessionToken !== undefined ? { sessionToken } : {}),
    ...(expiration !== null ? { expiration } : {}),
    source: path,
  };
}

/**
 * The INI dialect of `~/.aws/credentials`, read the way the AWS SDKs read it: `[section]`
 * headers, `key = value` lines, comments from a `#` or `;` at a line start or after
 * whitespace. A key with an empty value opens a sub-section (`s3 =` followed by indented
 * `max_concurrent_requests = 20`) whose indented keys are not the profile's own: they are
 * skipped. A later duplicate section adds to the earlier one.
 */
export function parseIni(text: string): Map<string, Record<string, string>> {
  const sections = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  let inSubSection = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = (raw.split(/(?:^|\s)[;#]/)[0] ?? "").trim();
    if (line === "") continue;
    if (line.startsWith("[") && line.endsWith("]")) {
      const name = line.slice(1, -1).trim();
      current = sections.get(name) ?? {};
      sections.set(name, current);
      inSubSection = false;
      continue;
    }
    const eq = line.indexOf("=");
    if (current === null || eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (value === "") {
      inSubSection = true;
      continue;
    }
    const indented = raw.trimStart() !== raw;
    if (inSubSection && indented) continue;
    inSubSection = false;
    current[key] = value;
  }
  return sections;
}

function parseExpiration(raw: string | undefined): Date | null {
  if (raw === undefined) return null;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : new Date(at);
}

/**
 * Missing credentials are the daemon's configuration problem, not the caller's and not
 * Bedrock's: a 500 that is not retried (another attempt would find the same nothing).
 */
function noCredentials(provider: string, message: string): GatewayError {
  // Not Bedrock's failure: nothing was sent to it (the breaker leaves it alone, failover
  // goes on to the next target).
  return new GatewayError("unavailable", message, {
    status: 500,
    provider,
    retryable: false,
    unconfigured: true,
  });
}
