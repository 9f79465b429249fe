/**
 * The baseline: the least a Deno reverse proxy can do (Deno.serve + fetch, no parsing, no
 * routing, no logging). Pilotfish's overhead is judged against this, not against zero.
 *
 *   deno run --allow-net=127.0.0.1 bench/bare_proxy.ts http://127.0.0.1:<upstream port>
 *
 * Listens on 127.0.0.1:0 and prints `{"port":N}` as its first stdout line.
 */

const upstream = Deno.args[0];
if (!upstream) throw new Error("usage: bare_proxy.ts <upstream origin>");
const target = `${upstream}/v1/chat/completions`;

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => {
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ port }) + "\n"));
  },
}, async (req) => {
  if (req.method !== "POST" || !req.url.endsWith("/v1/chat/completions")) {
    return new Response("not found", { status: 404 });
  }
  // Only the headers an OpenAI upstream needs: copying all would forward hop-by-hop ones.
  const headers = new Headers({ "content-type": "application/json" });
  const auth = req.headers.get("authorization");
  if (auth !== null) headers.set("authorization", auth);
  // Buffer the (small) body as Pilotfish does: a streamed request body would go out
  // chunked and make the baseline slower than any real proxy.
  const res = await fetch(target, {
    method: "POST",
    headers,
    body: await req.arrayBuffer(),
    signal: req.signal,
  });
  return new Response(res.body, { status: res.status, headers: res.headers });
});
