/**
 * The status page: one HTML document with its CSS and script inline (no build step, no
 * CDN, works offline). It polls `/api/v1/status` every 5 s and renders with `textContent`
 * only (names come from config and other sidecars: never parsed as HTML).
 * @module
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pilotfish status</title>
<style>
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #b7791f; --bad: #c62828; --mute: #777; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 12px; max-width: 1100px; margin-inline: auto; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
.sub { color: var(--mute); font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid #8884; border-radius: 8px; padding: 8px 10px; }
.card b { display: block; font-size: 18px; }
.card span { color: var(--mute); font-size: 12px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #8883; white-space: nowrap; }
th { font-size: 12px; color: var(--mute); font-weight: 600; }
.state-closed, .state-ok, .state-up { color: var(--ok); }
.state-half_open, .state-cooldown, .state-stale { color: var(--warn); }
.state-open, .state-down, .state-error { color: var(--bad); font-weight: 600; }
#error { color: var(--bad); }
</style>
</head>
<body>
<h1>Pilotfish <span id="name"></span></h1>
<div class="sub" id="meta">loading\u2026</div>
<div id="error" role="alert"></div>
<h2>Today</h2>
<div class="cards" id="cards"></div>
<h2>Providers</h2>
<div class="scroll"><table id="providers"><thead><tr><th>Provider</th><th>Type</th><th>Keys</th><th>Breaker</th><th>Failures</th><th>Cooldown until</th><th>Rollup</th><th>Requests</th><th>Errors</th></tr></thead><tbody></tbody></table></div>
<h2>Errors by class</h2>
<div class="scroll"><table id="errors"><thead><tr><th>Class</th><th>Count</th></tr></thead><tbody></tbody></table></div>
<h2>Rate limits</h2>
<div class="scroll"><table id="limits"><thead><tr><th>Scope</th><th>Metric</th><th>Window</th><th>Used</th><th>Limit</th><th>Denied today</th></tr></thead><tbody></tbody></table></div>
<h2>Fleet</h2>
<div class="sub" id="fleet-note"></div>
<div class="scroll"><table id="fleet"><thead><tr><th>Sidecar</th><th>Seen</th><th>Generation</th><th>Config</th><th>Requests</th><th>Errors</th><th>Open breakers</th><th>p50 / p99 ms</th></tr></thead><tbody></tbody></table></div>
<script>
"use strict";
const TOKEN_KEY = "pilotfish-admin-token";
const $ = (id) => document.getElementById(id);
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "\u2013" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function rows(id, list, fill) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const item of list) { const tr = document.createElement("tr"); fill(tr, item); body.appendChild(tr); }
  if (list.length === 0) { const tr = document.createElement("tr"); cell(tr, "none").colSpan = 9; body.appendChild(tr); }
}
function card(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const b = document.createElement("b"); b.textContent = value;
  const s = document.createElement("span"); s.textContent = label;
  div.append(b, s);
  return div;
}
const num = (n) => n === null || n === undefined ? "\u2013" : Number(n).toLocaleString();
const errorsOf = (stats) => Object.values(stats.errors || {}).reduce((a, b) => a + b, 0);
const when = (unix) => unix ? new Date(unix * 1000).toLocaleTimeString() : null;
function render(s) {
  $("name").textContent = s.name;
  $("meta").textContent = "generation " + s.generation + " \u00b7 config " + s.config_hash + " \u00b7 v" + s.version +
    " \u00b7 updated " + new Date(s.at).toLocaleTimeString();
  const st = s.stats;
  const rate = st.cache.hit_rate === null ? "\u2013" : (st.cache.hit_rate * 100).toFixed(1) + " %";
  $("cards").replaceChildren(
    card("requests", num(st.requests)),
    card("errors", num(errorsOf(st))),
    card("input tokens", num(st.tokens.input)),
    card("output tokens", num(st.tokens.output)),
    card("cost (USD)", "$" + st.cost_usd.toFixed(4)),
    card("cache hit rate", rate),
    card("latency p50 / p99 ms", num(st.latency_ms.p50) + " / " + num(st.latency_ms.p99)),
    card("overhead p50 / p99 ms", num(st.overhead_ms.p50) + " / " + num(st.overhead_ms.p99)),
    card("active streams", num(st.active_streams)),
  );
  rows("providers", s.providers, (tr, p) => {
    cell(tr, p.name);
    cell(tr, p.type);
    cell(tr, p.keys.map((k) => k.id + (k.status === "ok" ? "" : " (" + k.status + ")")).join(", ") || "none");
    const b = p.breaker;
    const keys = openKeys(b);
    // The state folds every key of the provider (llm-proxy's): the keys say which.
    cell(tr, b ? [b.state].concat(keys).join(", ") : "off", b ? "state-" + b.state : "");
    cell(tr, b ? b.failures : null);
    cell(tr, b ? when(b.cooldown_until) : null);
    cell(tr, b && b.rollup ? (b.rollup.open ? "OPEN " : "") + b.rollup.count + "/" + b.rollup.threshold : null,
      b && b.rollup && b.rollup.open ? "state-open" : "");
    const use = st.by_provider[p.name] || { requests: 0, errors: 0 };
    cell(tr, num(use.requests));
    cell(tr, num(use.errors));
  });
  rows("errors", Object.entries(st.errors), (tr, [k, v]) => { cell(tr, k); cell(tr, num(v)); });
  rows("limits", st.rate_limits, (tr, l) => {
    cell(tr, l.scope); cell(tr, l.metric); cell(tr, l.window); cell(tr, num(l.used)); cell(tr, num(l.limit)); cell(tr, num(l.denied));
  });
  const fleet = s.fleet;
  $("fleet-note").textContent = fleet === null
    ? "No Redis configured: this sidecar only."
    : (fleet.connected ? fleet.members.length + " sidecar(s) on Redis" : "Redis unreachable");
  const members = fleet === null ? [] : fleet.members;
  rows("fleet", members, (tr, m) => {
    cell(tr, m.name + (m.name === s.name ? " (this)" : ""));
    const age = Math.max(0, Math.round((s.at - m.at) / 1000));
    cell(tr, age + " s ago", age > 15 ? "state-stale" : "state-up");
    cell(tr, m.generation);
    cell(tr, m.config_hash);
    cell(tr, num(m.stats ? m.stats.requests : null));
    cell(tr, num(m.stats ? errorsOf(m.stats) : null));
    // A provider not closed with no model key open: its own (bare) key is the open one.
    const open = (m.providers || []).flatMap((p) => {
      if (!p.breaker) return [];
      const keys = openKeys(p.breaker);
      return p.breaker.state !== "closed" && !keys.length ? [p.name + " " + p.breaker.state] : keys;
    });
    cell(tr, open.join(", ") || "none", open.length ? "state-open" : "state-closed");
    cell(tr, m.stats ? num(m.stats.latency_ms.p50) + " / " + num(m.stats.latency_ms.p99) : null);
  });
}
// A provider's model keys that are not closed (its own state is its bare key's).
function openKeys(b) {
  return b && b.keys ? Object.entries(b.keys).filter(([, k]) => k.state !== "closed")
    .map(([name, k]) => name + " " + k.state) : [];
}
async function refresh() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = "Bearer " + token;
  try {
    const res = await fetch("/api/v1/status", { headers, cache: "no-store" });
    if (res.status === 401) {
      const given = prompt("Admin token (server.admin_token)");
      if (given) { sessionStorage.setItem(TOKEN_KEY, given); return refresh(); }
      $("error").textContent = "This status needs the admin token.";
      return;
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
    $("error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (err) {
    $("error").textContent = "Status unavailable: " + err.message;
  }
}
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
`;
