/**
 * Azure OpenAI through the gateway: the AzureOpenAI SDK on `/native/azure`, where Azure serves
 * the deployment its path names (allowlists, keys and pricing go by that deployment's model),
 * and a client's own key forwarded on the unified routes where Azure reads it.
 */
import assert from "node:assert/strict";
import { AzureOpenAI } from "openai";
import { startGateway } from "../helpers/in_process.ts";

interface Seen {
  readonly path: string;
  readonly headers: Headers;
}

/** Azure's chat answer for any deployment, recording what reached it. */
function fakeAzure() {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    const url = new URL(req.url);
    seen.push({ path: url.pathname, headers: req.headers });
    return Response.json({
      id: "chatcmpl-az",
      object: "chat.completion",
      created: 1,
      model: "gpt-4o-2024-08-06",
      choices: [{
        index: 0,
        message: { role: "assistant", content: "hi" },
        finish_reason: "stop",
        content_filter_results: {},
      }],
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
    }, { headers: { "apim-request-id": "apim-1" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: () => server.shutdown(),
  };
}

const API_VERSION = "2024-10-21";
const CHEAP_ONLY = "pf_azure_cheap_only_key_0000001";
const ANY = "pf_azure_any_model_key_00000002";

Deno.test("/native/azure: the deployment in the path is what allowlists, keys and pricing see", async () => {
  const azure = fakeAzure();
  const gw = startGateway(`
providers:
  azure:
    base_url: ${azure.url}
    deployments: { gpt-4o: prod-gpt4o, gpt-4o-mini: cheap-dep }
    keys: [{ key: azkey-configured-0001 }]
app_keys:
  enabled: true
  persistence: { enabled: false }
  keys:
    - { key: ${CHEAP_ONLY}, allowed_models: [azure/gpt-4o-mini] }
    - { key: ${ANY} }
`);
  const sdk = (appKey: string) =>
    new AzureOpenAI({
      endpoint: gw.url("/native/azure"),
      apiKey: appKey,
      apiVersion: API_VERSION,
      maxRetries: 0,
    });
  const ask = (deployment: string, body = deployment) =>
    gw.request(
      `/native/azure/openai/deployments/${deployment}/chat/completions?api-version=${API_VERSION}`,
      {
        method: "POST",
        headers: { "content-type": "application/json", "api-key": CHEAP_ONLY },
        body: JSON.stringify({ model: body, messages: [{ role: "user", content: "hi" }] }),
      },
    );
  try {
    // The SDK sends the app key as `api-key`: checked, never forwarded; the deployment is
    // priced as the model it serves.
    const ok = await sdk(ANY).chat.completions.create({
      model: "prod-gpt4o",
      messages: [{ role: "user", content: "hi" }],
    }).withResponse();
    assert.equal(ok.data.choices[0]?.message.content, "hi");
    assert.equal(ok.response.headers.get("x-pilotfish-model"), "gpt-4o");
    assert.equal(ok.response.headers.get("x-pilotfish-cost-usd"), "0.0000975");
    assert.equal(azure.seen.at(-1)?.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert.equal(azure.seen.at(-1)?.headers.get("api-key"), "azkey-configured-0001");

    // A body naming an allowed model does not open a deployment the key may not use.
    const before = azure.seen.length;
    const denied = await ask("prod-gpt4o", "cheap-dep");
    assert.equal(denied.status, 403);
    assert.match((await denied.json()).error.message, /not allowed to use model "gpt-4o"/);
    assert.equal(azure.seen.length, before, "refused before any upstream call");
    const allowed = await ask("cheap-dep", "prod-gpt4o");
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
    assert.equal(azure.seen.at(-1)?.path, "/openai/deployments/cheap-dep/chat/completions");

    // An unknown pf_ key in `api-key` is refused like one in Authorization.
    const unknown = await sdk("pf_not_a_key_000000000000000000").chat.completions.create({
      model: "prod-gpt4o",
      messages: [{ role: "user", content: "hi" }],
    }).then(() => null, (e: unknown) => e as { status?: number });
    assert.equal(unknown?.status, 401);
  } finally {
    await gw.close();
    await azure.close();
  }
});

Deno.test("unified routes: a client's own key for a keyless Azure provider goes as api-key", async () => {
  const azure = fakeAzure();
  const gw = startGateway(`
providers:
  azure: { base_url: ${azure.url} }
`);
  try {
    for (
      const headers of [
        { authorization: "Bearer client-azure-key-0001" },
        { "api-key": "client-azure-key-0001" },
      ]
    ) {
      const res = await gw.request("/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "azure/gpt-4o", messages: [{ role: "user", content: "x" }] }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const sent = azure.seen.at(-1)!;
      assert.equal(sent.headers.get("api-key"), "client-azure-key-0001");
      assert.equal(sent.headers.get("authorization"), null);
    }
  } finally {
    await gw.close();
    await azure.close();
  }
});
