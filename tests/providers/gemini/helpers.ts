/**
 * Shared by the Gemini adapter tests: fixtures, SSE output parsing, error capture.
 * @module
 */
import assert from "node:assert/strict";
import { GatewayError } from "../../../src/errors.ts";

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked, so tests that
 * start timers or streams opt in here.
 */
export const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;

const FIXTURES = new URL("../../fixtures/gemini/", import.meta.url);

export function fixtureText(name: string): Promise<string> {
  return Deno.readTextFile(new URL(name, FIXTURES));
}

export function fixtureBytes(name: string): Promise<Uint8Array> {
  return Deno.readFile(new URL(name, FIXTURES));
}

export async function fixtureJson(name: string): Promise<unknown> {
  return JSON.parse(await fixtureText(name));
}

/** Deterministic ids in place of the random ones: "id0", "id1", ... */
export function counterIds(): () => string {
  let n = 0;
  return () => `id${n++}`;
}

/** OpenAI SSE bytes → the parsed `data:` payloads, `[DONE]` kept as the string. */
export function parseOpenAISse(bytes: Uint8Array): unknown[] {
  const text = new TextDecoder().decode(bytes);
  assert.ok(text.endsWith("\n\n"), `stream must end with a blank line: ${JSON.stringify(text)}`);
  return text.slice(0, -2).split("\n\n").map((event) => {
    assert.ok(event.startsWith("data: "), `not a data event: ${JSON.stringify(event)}`);
    const data = event.slice(6);
    return data === "[DONE]" ? data : JSON.parse(data);
  });
}

/** Read a byte stream until it ends or errors; returns what arrived and the error, if any. */
export async function drain(
  stream: ReadableStream<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return { chunks, error: undefined };
      chunks.push(value);
    }
  } catch (error) {
    return { chunks, error };
  } finally {
    reader.releaseLock();
  }
}

/** Expect `fn` to throw (or reject with) a GatewayError and return it. */
export async function gatewayError(fn: () => unknown): Promise<GatewayError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected GatewayError, got ${err}`);
    return err;
  }
  assert.fail("expected a GatewayError");
}
