import assert from "node:assert/strict";
import { parseConfigText } from "../../src/config/mod.ts";
import { planGrants } from "../../src/permissions/plan.ts";

const plan = (yaml: string) =>
  planGrants(parseConfigText(yaml, () => undefined, "t.yaml").config, {
    configPath: null,
    configText: null,
    cwd: "/srv/app",
  });

Deno.test("planGrants() grants exactly the state file and its SQLite siblings when keys persist", () => {
  const on = plan(`server: { socket: "" }\napp_keys: { enabled: true }`);
  const files = [
    "/srv/app/pilotfish-state.db",
    "/srv/app/pilotfish-state.db-journal",
    "/srv/app/pilotfish-state.db-shm",
    "/srv/app/pilotfish-state.db-wal",
  ];
  assert.deepEqual(on.write, files);
  assert.deepEqual(on.read, files);

  const butter = plan(
    `server: { socket: "" }\napp_keys: { enabled: true, persistence: { enabled: true, path: /var/lib/pf/keys.db } }`,
  );
  assert.ok(butter.write.includes("/var/lib/pf/keys.db-wal"));
  assert.ok(!butter.write.some((f) => f.includes("pilotfish-state")));

  for (
    const off of [
      `server: { socket: "" }`,
      `server: { socket: "" }\napp_keys: { enabled: true, persistence: { enabled: false } }`,
      `server: { socket: "" }\nstate: { backend: redis }\napp_keys: { enabled: true }`,
    ]
  ) assert.deepEqual(plan(off).write, [], off);
  assert.ok(
    plan(
      `server: { socket: "" }\nstate: { backend: redis, redis: { url: "redis://r:7000" } }\napp_keys: { enabled: true }`,
    )
      .net.includes("r:7000"),
  );
});
