/**
 * Routing: model → ordered targets, and key choice per attempt.
 * @module
 */
export { resolveTargets, type Target } from "./resolve.ts";
export { pickKey } from "./keys.ts";
