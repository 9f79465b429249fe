/** The one place the version lives: `pilotfish --version`, the startup log line. */
export const VERSION = "0.1.0";
