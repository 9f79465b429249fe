/**
 * Errors of the state store that reach the startup line as they are.
 * @module
 */

/** The state file cannot be opened: its message is the whole startup line. */
export class StateFileError extends Error {
  override readonly name = "StateFileError";
}
