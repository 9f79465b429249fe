/**
 * Shared by the Bedrock adapter tests: the generic stream/error helpers, event-stream
 * fixtures built from the fake's frames, and fixed credential sources.
 * @module
 */
import { createBedrockAdapter } from "../../../src/providers/bedrock/adapter.ts";
import {
  createAwsCredentialProvider,
  type CredentialSources,
} from "../../../src/providers/bedrock/credentials.ts";
import type { Runtime } from "../../../src/runtime.ts";
import { type BedrockEvent, eventFrame } from "../../fakes/fake_bedrock.ts";
import { concatBytes } from "../../helpers/chunk.ts";

export { gatewayError } from "../../helpers/gateway_error.ts";
export { drain, parseOpenAISse } from "../../helpers/openai_sse.ts";
export { SANITIZE } from "../../helpers/sanitize.ts";

/** The bytes of a ConverseStream body carrying `events`, frame after frame. */
export function eventStreamOf(events: readonly BedrockEvent[]): Uint8Array {
  return concatBytes(events.map(eventFrame));
}

/**
 * Credential sources over a fixed environment and in-memory files (a missing path throws
 * NotFound, a path in `denied` throws NotCapable), with a settable clock.
 */
export function fakeSources(
  env: Record<string, string>,
  files: Record<string, string> = {},
  opts: { deniedEnv?: string[]; deniedFiles?: string[] } = {},
): CredentialSources & { reads: string[]; clock: { now: number } } {
  const reads: string[] = [];
  const clock = { now: Date.parse("2026-01-15T12:00:00Z") };
  return {
    reads,
    clock,
    env(name) {
      if (opts.deniedEnv?.includes(name)) {
        throw new Deno.errors.NotCapable(`Requires env access to "${name}"`);
      }
      return env[name];
    },
    readTextFile(path) {
      reads.push(path);
      if (opts.deniedFiles?.includes(path)) {
        return Promise.reject(new Deno.errors.NotCapable(`Requires read access to "${path}"`));
      }
      const text = files[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(text);
    },
    now: () => clock.now,
  };
}

/**
 * Make an in-process gateway's Bedrock provider `name` (`sign: true`) sign with the
 * credentials in `env` (none when empty), not whatever the test process's environment has.
 */
export function signWithEnv(rt: Runtime, name: string, env: Record<string, string>): void {
  (rt.adapters as Map<string, unknown>).set(
    name,
    createBedrockAdapter(
      rt.config.providers[name]!,
      { fetch: rt.fetch, redact: rt.redact, random: rt.random },
      createAwsCredentialProvider(name, fakeSources(env)),
    ),
  );
}
