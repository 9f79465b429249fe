/**
 * Daemons configured like the README's provider recipes, each provider pointed at a local
 * fake (tests/fakes): Gemini for the GenAI SDK, Bedrock for the AWS SDKs, and an unreachable
 * OpenAI next to a working Anthropic for the degraded-signal client check.
 */
import { startFakeAnthropic } from "../fakes/fake_anthropic.ts";
import { startFakeBedrock, TEST_CREDENTIALS } from "../fakes/fake_bedrock.ts";
import { startFakeGemini } from "../fakes/fake_gemini.ts";
import { type Daemon, freePort, startDaemon } from "../integration/daemon.ts";

/** What the AWS SDKs of a recipe sign with (the fake verifies the signature). */
export const AWS_ENV: Record<string, string> = {
  AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: TEST_CREDENTIALS.sessionToken,
  AWS_EC2_METADATA_DISABLED: "true",
};

export const GEMINI_CLIENT_KEY = "AIza-recipe-client-key-0000000000000";

interface Fixture<F> {
  readonly daemon: Daemon;
  readonly fake: F;
  close(): Promise<void>;
}

export async function geminiDaemon() {
  const fake = startFakeGemini();
  fake.script({ json: "response_text" });
  const daemon = await startDaemon(`
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  gemini: { base_url: "${fake.url}", keys: [{ key: AIza-configured-gemini-key-000000 }] }
`);
  return fixture(daemon, fake);
}

export async function bedrockDaemon() {
  const fake = startFakeBedrock();
  const daemon = await startDaemon(`
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  bedrock: { enabled: true, region: us-west-2, endpoint: "${fake.url}" }
`);
  return fixture(daemon, fake);
}

/** openai refuses connections (degraded); anthropic answers. The breaker is on. */
export async function degradedDaemon() {
  const fake = startFakeAnthropic();
  fake.script({ json: "response_text" });
  const daemon = await startDaemon(`
server: { port: {{PORT}}, socket: "{{SOCKET}}" }
providers:
  openai: { base_url: "http://127.0.0.1:${freePort()}/v1", keys: [{ key: sk-recipe-openai }] }
  anthropic: { base_url: "${fake.url}/v1", keys: [{ key: sk-ant-recipe-0001 }] }
features:
  circuit_breaker: { enabled: true, max_transient_retries: 1 }
`);
  return fixture(daemon, fake);
}

function fixture<F extends { close(): Promise<void> }>(daemon: Daemon, fake: F): Fixture<F> {
  return {
    daemon,
    fake,
    close: async () => {
      await daemon.stop();
      await fake.close();
    },
  };
}
