/**
 * Permission sandbox: derive the exact Deno grants a config needs, and check them.
 * @module
 */
export { DAEMON_ENV, type Grants, grantsToFlags, planGrants, shellQuote } from "./plan.ts";
export { missingGrants } from "./check.ts";
