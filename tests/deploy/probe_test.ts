/**
 * The exec probe every example runs (Kubernetes startup/readiness/liveness, the compose
 * health check): the same argv, with the image's binary replaced by `deno task start`
 * (scripts/start.sh, the same entry point) and the socket by a test daemon's. It must say 0
 * while the daemon is up and 1 once it is gone. Skipped, with the reason in its name, until
 * the CLI has `--probe`.
 */
import assert from "node:assert/strict";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import { USAGE } from "../../src/cli.ts";
import { runCli, startDaemon } from "../integration/daemon.ts";
import { imageBinary, probeCommand, ROOT } from "./helpers.ts";
import { parseManifests } from "./kubernetes.ts";

const HAS_PROBE = USAGE.includes("--probe");
const EXAMPLE = "examples/kubernetes/pilotfish-sidecar.yaml";
const EXAMPLE_SOCKET = "/var/run/pilotfish/pilotfish.sock";

/** The startup probe's argv as the example's manifest has it. */
async function exampleProbe(): Promise<string[]> {
  const docs = parseManifests(await Deno.readTextFile(`${ROOT}${EXAMPLE}`), EXAMPLE);
  const deployment = docs.find((d) => d.kind === "Deployment") as unknown as IDeployment;
  const probe = deployment.spec?.template.spec?.initContainers?.[0]?.startupProbe;
  return probe?.exec?.command ?? [];
}

Deno.test({
  name: `the examples' exec probe exits 0 on a live daemon and 1 without one${
    HAS_PROBE ? "" : " (skipped: the CLI has no --probe yet)"
  }`,
  ignore: !HAS_PROBE,
  async fn() {
    const argv = await exampleProbe();
    assert.deepEqual(argv, probeCommand(await imageBinary(), EXAMPLE_SOCKET));
    const d = await startDaemon("server:\n  port: {{PORT}}\n  socket: {{SOCKET}}\n");
    const args = argv.slice(1).map((a) => a === EXAMPLE_SOCKET ? d.socket : a);
    try {
      const up = await runCli(args);
      assert.equal(up.code, 0, up.stdout + up.stderr);
    } finally {
      await d.stop();
    }
    const down = await runCli(args);
    assert.equal(down.code, 1, down.stdout + down.stderr);
  },
});
