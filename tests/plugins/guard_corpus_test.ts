/**
 * The prompt-injection guard (plugins/prompt-injection-guard/plugin.wasm) over its corpus
 * (tests/fixtures/injection/): detection ≥ 95 % of the malicious prompts (more than half
 * obfuscated) and false positives ≤ 2 % of the benign-but-scary ones. Run through the real
 * host (compiled module, worker pool), as the gateway runs it.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfigText } from "../../src/config/mod.ts";
import { compilePlugin, startPool } from "../../src/plugins/mod.ts";
import { decodeOutput } from "../../src/plugins/abi.ts";

const GUARD = fileURLToPath(
  new URL("../../plugins/prompt-injection-guard/plugin.wasm", import.meta.url),
);
const CORPUS = new URL("../fixtures/injection/", import.meta.url);

interface Case {
  id: string;
  category?: string;
  obfuscation: string;
  body: unknown;
}

const read = (name: string): Case[] =>
  Deno.readTextFileSync(new URL(name, CORPUS)).trim().split("\n").map((l) => JSON.parse(l));

function guardPool(config: Record<string, string>) {
  const { config: cfg } = parseConfigText(
    `wasm_plugins:\n  - name: guard\n    path: ${GUARD}\n    config: ${JSON.stringify(config)}\n`,
    () => undefined,
    "guard.yaml",
  );
  return startPool(compilePlugin(cfg.wasm_plugins[0]!, "/"));
}

Deno.test("prompt-injection guard: detection ≥ 95 % and false positives ≤ 2 % on the corpus", async () => {
  const malicious = read("malicious.jsonl");
  const benign = read("benign.jsonl");
  const obfuscated = malicious.filter((c) => c.obfuscation !== "none").length;
  assert.ok(malicious.length >= 200 && benign.length >= 200, "corpus sizes");
  assert.ok(obfuscated * 2 >= malicious.length, "at least half obfuscated");
  const categories = new Set(malicious.map((c) => c.category));
  assert.equal(categories.size, 9, "all nine categories");

  const pool = guardPool({ mode: "block" });
  try {
    await pool.ready;
    const blocked = async (c: Case) => {
      const r = await pool.call(
        "pre_http",
        new TextEncoder().encode(JSON.stringify({ hook: "pre_http", body: c.body })),
      );
      if (r.kind === "error") throw new Error(`${c.id}: ${r.message}`);
      if (r.kind === "none") return null;
      const out = decodeOutput(r.bytes);
      return out.short_circuit ? out.metadata ?? {} : null;
    };
    const missed: string[] = [];
    for (const c of malicious) {
      if (await blocked(c) === null) missed.push(`${c.id} [${c.category}, ${c.obfuscation}]`);
    }
    const flagged: string[] = [];
    for (const c of benign) {
      const hit = await blocked(c);
      if (hit !== null) {
        flagged.push(`${c.id} (${hit.injection_pattern}): ${JSON.stringify(c.body).slice(0, 120)}`);
      }
    }
    const detection = (malicious.length - missed.length) / malicious.length;
    const fp = flagged.length / benign.length;
    // deno-lint-ignore no-console
    console.log(
      `guard corpus: detection ${(detection * 100).toFixed(1)}% (${
        malicious.length - missed.length
      }/${malicious.length}, ${obfuscated} obfuscated), ` +
        `false positives ${(fp * 100).toFixed(1)}% (${flagged.length}/${benign.length})` +
        (missed.length ? `\n  missed: ${missed.join("\n          ")}` : "") +
        (flagged.length ? `\n  flagged: ${flagged.join("\n           ")}` : ""),
    );
    assert.ok(detection >= 0.95, `detection ${detection}`);
    assert.ok(fp <= 0.02, `false positives ${fp}`);
  } finally {
    pool.close();
  }
});

/** Detection and false-positive rates of the guard (mode block) on two held-out files. */
async function heldOut(maliciousFile: string, benignFile: string) {
  const rows = (name: string) =>
    Deno.readTextFileSync(new URL(name, CORPUS)).split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
      .map((l) => l.replaceAll("\\n", "\n").split("\t").at(-1)!);
  const malicious = rows(maliciousFile);
  const benign = rows(benignFile);
  assert.ok(malicious.length >= 150 && benign.length >= 150, "held-out sizes");
  const pool = guardPool({ mode: "block" });
  try {
    await pool.ready;
    const blocked = async (content: string) => {
      const body = { model: "up/gpt-up", messages: [{ role: "user", content }] };
      const r = await pool.call(
        "pre_http",
        new TextEncoder().encode(JSON.stringify({ hook: "pre_http", body })),
      );
      if (r.kind === "error") throw new Error(r.message);
      return r.kind === "output" && decodeOutput(r.bytes).short_circuit === true;
    };
    let caught = 0;
    for (const m of malicious) if (await blocked(m)) caught++;
    let flagged = 0;
    for (const b of benign) if (await blocked(b)) flagged++;
    // deno-lint-ignore no-console
    console.log(
      `guard held-out ${maliciousFile}: detection ${
        (100 * caught / malicious.length).toFixed(1)
      }% ` +
        `(${caught}/${malicious.length}), false positives ${
          (100 * flagged / benign.length).toFixed(1)
        }% (${flagged}/${benign.length})`,
    );
    return { detection: caught / malicious.length, fp: flagged / benign.length };
  } finally {
    pool.close();
  }
}

// Floors at what the guard measures (scripts/train_guard.ts never reads heldout_*): a change to
// the patterns or the classifier must not fall below. The patterns alone, when each set was
// written: prompts 37.8 % / 2.2 %, documents 23.1 % / 2.5 %.
Deno.test("prompt-injection guard on held-out prompts it was never trained on: rates printed, floors held", async () => {
  const { detection, fp } = await heldOut("heldout_malicious.tsv", "heldout_benign.tsv");
  assert.ok(detection >= 0.86, `detection ${detection}`);
  assert.ok(fp <= 0.012, `false positives ${fp}`);
});

Deno.test("prompt-injection guard on held-out pasted documents: rates printed, floors held", async () => {
  const { detection, fp } = await heldOut("heldout_docs_malicious.tsv", "heldout_docs_benign.tsv");
  assert.ok(detection >= 0.43, `detection ${detection}`);
  assert.ok(fp <= 0.025, `false positives ${fp}`);
});
