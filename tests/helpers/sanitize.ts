/**
 * The sanitizer options for tests that start timers or streams.
 * @module
 */

/**
 * Deno 2.9 runs tests without the op and resource sanitizers unless asked (`--trace-leaks`
 * alone only adds stack traces), so tests that start timers or streams opt in here.
 */
export const SANITIZE = { sanitizeOps: true, sanitizeResources: true } as const;
