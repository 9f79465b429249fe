/**
 * Permission sandbox: derive the exact Deno grants a config needs, and check them.
 * @module
 */
export {
  DAEMON_ENV,
  type Grants,
  grantsToFlags,
  planGrants,
  planProbeGrants,
  probeHost,
  shellQuote,
} from "./plan.ts";
export {
  COMPILED_GRANTS,
  launchFlags,
  type LaunchGrants,
  type Narrowed,
  narrowPermissions,
  planFor,
  uncovered,
} from "./narrow.ts";
export { missingGrants } from "./check.ts";
