import assert from "node:assert/strict";
import { type Config, DEFAULT_ENV_KEYS, parseConfigText } from "../../src/config/mod.ts";
import {
  DAEMON_ENV,
  grantsToFlags,
  planGrants,
  planProbeGrants,
  probeHost,
  shellQuote,
} from "../../src/permissions/mod.ts";

const NO_ENV = () => undefined;

const FULL_TEXT = `
server:
  host: 127.0.0.1
  port: 9100
  socket: ./run/pilotfish.sock
  admin_token: "\${ADMIN_TOKEN:-change-me}"
providers:
  openai:
    keys: [{ key: "\${OPENAI_API_KEY}" }]
  local:
    base_url: http://10.0.0.5:8000/v1
  intranet:
    base_url: http://llm.internal/v1
  bedrock:
    region: eu-west-1
  mock: {}
state:
  backend: redis
  redis:
    url: redis://:hunter2@cache.internal:6380/0
features:
  circuit_breaker:
    enabled: true
    redis: { address: "cb-redis:6379" }
`;

function configOf(text: string): Config {
  return parseConfigText(text, NO_ENV, "pilotfish.yaml").config;
}

Deno.test("planGrants() grants listeners, provider hosts, redis, the file and its env vars", () => {
  const grants = planGrants(configOf(FULL_TEXT), {
    configPath: "conf/pilotfish.yaml",
    configText: FULL_TEXT,
    cwd: "/srv/app",
  });
  assert.deepEqual(grants.net, [
    "10.0.0.5:8000", // http with an explicit port
    "127.0.0.1:9100", // TCP listener
    "api.openai.com:443", // https preset, default port
    "bedrock-runtime.eu-west-1.amazonaws.com:443",
    "cache.internal:6380", // state.redis.url (credentials dropped)
    "cb-redis:6379", // features.circuit_breaker.redis
    "llm.internal:80", // http, default port
    "unix:/srv/app/run/pilotfish.sock",
  ]);
  assert.deepEqual(grants.read, ["/srv/app/conf/pilotfish.yaml", "/srv/app/run/pilotfish.sock"]);
  assert.deepEqual(grants.write, ["/srv/app/run/pilotfish.sock"]);
  const expectedEnv = [...new Set([...DAEMON_ENV, ...DEFAULT_ENV_KEYS, "ADMIN_TOKEN"])].sort();
  assert.deepEqual(grants.env, expectedEnv);
  assert.ok(grants.env.includes("OPENAI_API_KEY"));
  assert.ok(grants.env.includes("LOG_TOKENS"), "npm:yaml reads LOG_TOKENS on every parse");
});

Deno.test("planGrants() grants the breaker's Redis exactly when its store will use one", () => {
  // `mock` keeps these Pilotfish configs (no llm-proxy providers added).
  const net = (text: string) =>
    planGrants(configOf(`${text}\nproviders: { mock: {} }`), {
      configPath: null,
      configText: null,
      cwd: "/srv",
    }).net
      .filter((h) => !h.startsWith("127.0.0.1:9002") && !h.startsWith("unix:"));
  // llm-proxy's `backend: redis` with no block of its own: the shared Redis (state.redis.url).
  assert.deepEqual(
    net(`state: { redis: { url: "redis://10.0.0.9:6390" } }
features: { circuit_breaker: { enabled: true, backend: redis } }`),
    ["10.0.0.9:6390"],
  );
  // ... and llm-proxy's defaults: state.redis.url's default.
  assert.deepEqual(
    net("features: { circuit_breaker: { enabled: true, backend: redis } }"),
    ["127.0.0.1:6379"],
  );
  // Off, or on the memory backend: no Redis, whatever its block says.
  assert.deepEqual(
    net('features: { circuit_breaker: { backend: redis, redis: { address: "cb:6379" } } }'),
    [],
  );
  assert.deepEqual(
    net('features: { circuit_breaker: { enabled: true, redis: { address: "cb:6379" } } }'),
    [],
  );
});

Deno.test("planGrants() grants only what the embedded-style minimal config needs", () => {
  const grants = planGrants(configOf(""), { configPath: null, configText: null, cwd: "/srv" });
  assert.deepEqual(grants.net, ["127.0.0.1:9002", "unix:/tmp/pilotfish.sock"]);
  assert.deepEqual(grants.read, ["/tmp/pilotfish.sock"]);
  assert.deepEqual(grants.write, ["/tmp/pilotfish.sock"]);
  assert.deepEqual(grants.env, [...new Set([...DAEMON_ENV, ...DEFAULT_ENV_KEYS])].sort());
});

Deno.test("planGrants() follows listener switches and Butter's address", async (t) => {
  const ctx = { configPath: null, configText: null, cwd: "/srv" };
  await t.step("no TCP and no socket: no listener grants", () => {
    const grants = planGrants(configOf('server:\n  tcp: false\n  socket: ""\n'), ctx);
    assert.deepEqual(grants.net, []);
    assert.deepEqual(grants.write, []);
  });
  await t.step('":8080" grants every interface', () => {
    const grants = planGrants(configOf('server:\n  address: ":8080"\n  socket: ""\n'), ctx);
    assert.deepEqual(grants.net, ["0.0.0.0:8080"]);
  });
  await t.step("port 0 grants the host on any port", () => {
    const grants = planGrants(configOf('server:\n  port: 0\n  socket: ""\n'), ctx);
    assert.deepEqual(grants.net, ["127.0.0.1"]);
  });
  await t.step("an IPv6 host is bracketed", () => {
    const grants = planGrants(configOf('server:\n  host: "::1"\n  socket: ""\n'), ctx);
    assert.deepEqual(grants.net, ["[::1]:9002"]);
  });
  await t.step("a memory state backend grants no redis host", () => {
    const text = "state:\n  redis:\n    url: redis://cache:6379\n";
    assert.ok(!planGrants(configOf(text), ctx).net.includes("cache:6379"));
  });
});

Deno.test("grantsToFlags() renders one --allow flag per non-empty grant", () => {
  assert.deepEqual(
    grantsToFlags({
      net: ["127.0.0.1:9002", "api.openai.com:443"],
      read: ["/etc/pilotfish.yaml"],
      write: [],
      env: ["OPENAI_API_KEY", "PORT"],
    }),
    [
      "--allow-net=127.0.0.1:9002,api.openai.com:443",
      "--allow-read=/etc/pilotfish.yaml",
      "--allow-env=OPENAI_API_KEY,PORT",
    ],
  );
  assert.deepEqual(grantsToFlags({ net: [], read: [], write: [], env: [] }), []);
});

Deno.test("shellQuote() single-quotes and escapes embedded single quotes", () => {
  assert.equal(shellQuote("plain"), "'plain'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote(""), "''");
});

Deno.test("shellQuote() output reads back verbatim through sh", async () => {
  const args = [
    "it's",
    "--allow-read=/path with spaces/pilotfish.yaml",
    '$HOME `id` $(id) \\n "q" ; | & * ?',
    "multi\nline",
    "''",
  ];
  for (const arg of args) {
    const { code, stdout } = await new Deno.Command("sh", {
      args: ["-c", `printf %s ${shellQuote(arg)}`],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(code, 0);
    assert.equal(new TextDecoder().decode(stdout), arg);
  }
});

Deno.test("planGrants() grants Bedrock signing mode its AWS credential sources, and nothing more", () => {
  const { config } = parseConfigText(
    "providers:\n  bedrock: { sign: true, region: eu-west-1 }\n",
    () => undefined,
    "b.yaml",
  );
  const grants = planGrants(config, {
    configPath: null,
    configText: null,
    cwd: "/srv",
    env: (name) => ({ HOME: "/home/app" } as Record<string, string>)[name],
  });
  assert.ok(grants.net.includes("bedrock-runtime.eu-west-1.amazonaws.com:443"));
  for (
    const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]
  ) {
    assert.ok(grants.env.includes(name), name);
  }
  assert.ok(grants.read.includes("/home/app/.aws/credentials"));
  // Keys in the environment are all the daemon reads: no file (a systemd service user's HOME
  // is /nonexistent, which the compiled binary may not read).
  const fromEnv = planGrants(config, {
    configPath: null,
    configText: null,
    cwd: "/srv",
    env: (name) =>
      ({
        HOME: "/nonexistent",
        AWS_ACCESS_KEY_ID: "AKIA0000",
        AWS_SECRET_ACCESS_KEY: "s",
      } as Record<
        string,
        string
      >)[name],
  });
  assert.ok(!fromEnv.read.some((p) => p.includes(".aws")), fromEnv.read.join());
  assert.ok(fromEnv.env.includes("AWS_SESSION_TOKEN"));
  const passthroughOnly = planGrants(
    parseConfigText("providers:\n  bedrock: { region: eu-west-1 }\n", () => undefined, "b.yaml")
      .config,
    { configPath: null, configText: null, cwd: "/srv" },
  );
  assert.ok(
    !passthroughOnly.env.includes("AWS_SECRET_ACCESS_KEY"),
    "passthrough never needs AWS keys",
  );
});

Deno.test("planGrants() grants web identity its token file and STS host, only in signing mode", async (t) => {
  const signing = configOf("providers:\n  bedrock: { sign: true, region: eu-west-1 }\n");
  const irsa: Record<string, string> = {
    HOME: "/home/nonroot",
    AWS_WEB_IDENTITY_TOKEN_FILE: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/pilotfish",
    AWS_REGION: "eu-west-1",
  };
  const plan = (env: Record<string, string>, config = signing) =>
    planGrants(config, { configPath: null, configText: null, cwd: "/srv", env: (n) => env[n] });
  await t.step("the regional STS endpoint and the token file", () => {
    const grants = plan(irsa);
    assert.ok(grants.net.includes("sts.eu-west-1.amazonaws.com:443"), grants.net.join());
    assert.ok(grants.read.includes("/var/run/secrets/eks.amazonaws.com/serviceaccount/token"));
    assert.ok(grants.read.includes("/home/nonroot/.aws/credentials"), "the file comes first");
    for (
      const name of [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_STS_REGIONAL_ENDPOINTS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_DEFAULT_REGION",
      ]
    ) {
      assert.ok(grants.env.includes(name), name);
    }
  });
  await t.step("AWS_ENDPOINT_URL_STS and a relative token path", () => {
    const grants = plan({
      ...irsa,
      AWS_ENDPOINT_URL_STS: "http://127.0.0.1:4566",
      AWS_WEB_IDENTITY_TOKEN_FILE: "run/token",
    });
    assert.ok(grants.net.includes("127.0.0.1:4566"));
    assert.ok(!grants.net.some((h) => h.startsWith("sts.")), grants.net.join());
    assert.ok(grants.read.includes("/srv/run/token"));
  });
  await t.step("without a role ARN, or without signing, nothing of it", () => {
    const { AWS_ROLE_ARN: _, ...noRole } = irsa;
    assert.ok(!plan(noRole).net.some((h) => h.startsWith("sts.")));
    const passthrough = plan(irsa, configOf("providers:\n  bedrock: { region: eu-west-1 }\n"));
    assert.ok(!passthrough.net.some((h) => h.startsWith("sts.")));
    assert.ok(!passthrough.read.some((p) => p.includes("serviceaccount")));
  });
  await t.step("variables the planner may not read count as unset", () => {
    const grants = planGrants(signing, {
      configPath: null,
      configText: null,
      cwd: "/srv",
      env: () => {
        throw new Deno.errors.NotCapable("Requires env access");
      },
    });
    assert.ok(!grants.net.some((h) => h.startsWith("sts.")));
  });
});

Deno.test("planProbeGrants() grants a connection to the daemon and the config, nothing else", () => {
  const text = `server:\n  host: 0.0.0.0\n  port: 9100\n  socket: run/pf.sock\n` +
    `providers:\n  openai:\n    keys: [{ key: "\${OPENAI_API_KEY}" }]\n` +
    `  bedrock: { sign: true, region: eu-west-1 }\n`;
  const grants = planProbeGrants(configOf(text).server, {
    configPath: "pf.yaml",
    configText: text,
    cwd: "/srv",
    env: (n) => ({ HOME: "/home/app" } as Record<string, string>)[n],
  });
  assert.deepEqual(grants.net, ["127.0.0.1:9100", "unix:/srv/run/pf.sock"]);
  assert.deepEqual(grants.read, ["/srv/pf.yaml", "/srv/run/pf.sock"]);
  assert.deepEqual(grants.write, ["/srv/run/pf.sock"]);
  assert.ok(!grants.env.includes("AWS_SECRET_ACCESS_KEY"), "no credentials");
  const tcpOnly = planProbeGrants(configOf("server:\n  host: '::'\n  socket: ''\n").server, {
    configPath: null,
    configText: null,
    cwd: "/srv",
  });
  assert.deepEqual(tcpOnly, {
    net: ["[::1]:9002"],
    read: [],
    write: [],
    env: [...new Set([...DAEMON_ENV, ...DEFAULT_ENV_KEYS])].sort(),
  });
  assert.equal(probeHost("localhost"), "localhost");
  assert.equal(probeHost("[::1]"), "::1");
});

Deno.test("planGrants(): the PEM files the OTLP exporter's env names are readable", () => {
  const config = configOf(
    "telemetry:\n  tracing: { enabled: true, endpoint: https://otel.example:4318 }\n",
  );
  const env: Record<string, string> = {
    OTEL_EXPORTER_OTLP_CERTIFICATE: "/etc/ssl/collector-ca.pem",
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: "tls/client.key",
  };
  const grants = planGrants(config, {
    configPath: null,
    configText: null,
    cwd: "/srv",
    env: (n) => env[n],
  });
  assert.ok(grants.net.includes("otel.example:4318"), grants.net.join());
  assert.ok(grants.read.includes("/etc/ssl/collector-ca.pem"), grants.read.join());
  assert.ok(grants.read.includes("/srv/tls/client.key"), grants.read.join());
  // Without tracing, nothing is read for it.
  const off = planGrants(configOf("providers: {}\n"), {
    configPath: null,
    configText: null,
    cwd: "/srv",
    env: (n) => env[n],
  });
  assert.ok(!off.read.includes("/etc/ssl/collector-ca.pem"));
});

Deno.test("planGrants(): the limiter's Redis is the one it uses, and none when it is off", () => {
  const plan = (text: string) =>
    planGrants(configOf(text), { configPath: null, configText: null, cwd: "/srv" }).net;
  // llm-proxy's form: the limiter has its own block, so state.redis (unset: :6379) is not used.
  const own = plan(`features:
  rate_limiting:
    enabled: true
    backend: redis
    redis: { address: "10.0.0.5:6380" }
    limits: { requests_per_minute: 100 }
`);
  assert.ok(own.includes("10.0.0.5:6380"), own.join());
  assert.ok(!own.includes("127.0.0.1:6379"), own.join());
  // Disabled: nothing to connect to, whatever its block says.
  const off = plan(`features:
  rate_limiting:
    enabled: false
    backend: redis
    redis: { url: "redis://10.9.9.9:6400" }
`);
  assert.ok(!off.includes("10.9.9.9:6400"), off.join());
});
