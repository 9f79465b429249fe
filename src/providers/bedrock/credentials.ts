import { GatewayError } from "../../errors.ts";

/**
 * AWS credentials for Bedrock signing mode, resolved by the daemon itself from the sources
 * an AWS SDK would look at first, in the same order:
 *
 * 1. env `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
 * 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `$HOME/.aws/credentials`),
 *    profile `AWS_PROFILE` or `default`, static keys only.
 *
 * Web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, EKS IRSA) needs an STS
 * `AssumeRoleWithWebIdentity` call: the maintained implementation
 * (`@aws-sdk/credential-provider-web-identity`) brings its own STS client and HTTP stack,
 * outside `execute.ts` and the permission plan, so it is reported as unsupported with a
 * message saying what to do instead. So are profiles that assume a role, run a process or
 * use SSO.
 * @module
 */

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** When temporary credentials stop working, if the source says. */
  readonly expiration?: Date;
  /** Where they came from, for messages: "environment" or the credentials file path. */
  readonly source: string;
}

/** What resolution reads; the real one is `DENO_CREDENTIAL_SOURCES`, tests pass their own. */
export interface CredentialSources {
  /** An env var, undefined when unset. May throw `Deno.errors.NotCapable` when not granted. */
  env(name: string): string | undefined;
  /** A file's text; throws `Deno.errors.NotFound` when it does not exist. */
  readTextFile(path: string): Promise<string>;
  now(): number;
}

export const DENO_CREDENTIAL_SOURCES: CredentialSources = {
  env: (name) => Deno.env.get(name),
  readTextFile: (path) => Deno.readTextFile(path),
  now: Date.now,
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
];

const WEB_IDENTITY_ENV = ["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"];

/** Credentials are refreshed this long before they expire. */
const EXPIRY_MARGIN_MS = 5 * 60_000;
/** File credentials are read again after this long: tools rotate them in place. */
const FILE_RECHECK_MS = 5 * 60_000;

export interface AwsCredentialProvider {
  /** The current credentials; throws a 500-class GatewayError when there are none. */
  get(): Promise<AwsCredentials>;
  /** Forget the cached credentials (AWS said they expired or are unknown). */
  invalidate(): void;
}

/**
 * Resolve once, on first use, and keep the result until it is about to expire (file
 * credentials: also re-read every few minutes) or `invalidate()` is called. Concurrent
 * callers share one resolution. A failure is not cached: the next request looks again, so
 * credentials mounted after start are found. One provider per config load.
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
      pending ??= resolveAwsCredentials(provider, sources).then((credentials) => {
        const now = sources.now();
        let freshUntil = credentials.source === "environment" ? Infinity : now + FILE_RECHECK_MS;
        if (credentials.expiration !== undefined) {
          freshUntil = Math.min(freshUntil, credentials.expiration.getTime() - EXPIRY_MARGIN_MS);
        }
        cached = { credentials, freshUntil };
        return credentials;
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
      // Not granted to the daemon: reported below if nothing else is found (the web-identity
      // pair only serves to explain why it is not used, so its absence is not news).
      if (!WEB_IDENTITY_ENV.includes(name)) denied.push(name);
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

  if (env("AWS_WEB_IDENTITY_TOKEN_FILE") !== undefined && env("AWS_ROLE_ARN") !== undefined) {
    throw noCredentials(
      provider,
      `Bedrock signing for provider "${provider}" found web-identity settings ` +
        `(AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), which Pilotfish does not support yet ` +
        `(they need an STS AssumeRoleWithWebIdentity call); set AWS_ACCESS_KEY_ID and ` +
        `AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or mount a shared credentials file`,
    );
  }
  const unreadable = denied.length > 0
    ? `; the daemon may not read ${denied.join(", ")} (not granted)`
    : "";
  throw noCredentials(
    provider,
    `Bedrock signing is on for provider "${provider}" but no AWS credentials were found ` +
      `(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN for temporary ` +
      `credentials, or provide a shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ` +
      `~/.aws/credentials, profile AWS_PROFILE or "default")${unreadable}`,
  );
}

/**
 * Static keys from the shared credentials file. null when the file or the `default`
 * profile does not exist; an error when a profile was asked for by name and is missing, or
 * when the profile exists but gets its credentials some way we do not support.
 */
async function readCredentialsFile(
  provider: string,
  env: (name: string) => string | undefined,
  sources: CredentialSources,
): Promise<AwsCredentials | null> {
  const home = env("HOME");
  const configured = env("AWS_SHARED_CREDENTIALS_FILE");
  const path = configured !== undefined
    ? (configured.startsWith("~/") && home !== undefined
      ? `${home}/${configured.slice(2)}`
      : configured)
    : home !== undefined
    ? `${home.replace(/\/$/, "")}/.aws/credentials`
    : null;
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
  return new GatewayError("unavailable", message, { status: 500, provider, retryable: false });
}
