/**
 * Generic modules must not branch on provider names: what one provider's API means
 * (failure classes, credentials, usage shapes, native routes) lives in
 * src/providers/<name>/ behind the adapter. This greps the generic folders for the
 * provider type and preset names as string literals and fails with file:line.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The folders that must stay provider-neutral. */
const GENERIC = [
  "src/pipeline",
  "src/routes",
  "src/routing",
  "src/streaming",
  "src/breaker",
  "src/server",
];

/** Provider types and presets (src/config/presets.ts). */
const NAMES = [
  "openai",
  "azure",
  "azure-openai",
  "anthropic",
  "gemini",
  "bedrock",
  "mock",
  "openrouter",
  "groq",
  "mistral",
  "together",
  "fireworks",
  "perplexity",
  "deepseek",
  "xai",
  "ollama",
  "vllm",
];

/**
 * `file:literal` pairs that are allowed. Empty: error envelopes and wire formats carry
 * their own names (`openai_json`, `anthropic_sse`, `google_rpc`, `aws_json`), which are not
 * provider names. Add an entry only for a wire-format name, with a comment saying why.
 */
const ALLOWED: ReadonlySet<string> = new Set<string>([]);

const LITERAL = new RegExp(
  `(["'\`])(${NAMES.map((n) => n.replace("-", "\\-")).join("|")})\\1`,
  "g",
);

/** `file:line: literal` for every provider name written as a string literal in `text`. */
export function providerLiterals(file: string, text: string): string[] {
  const found: string[] = [];
  let inBlock = false;
  text.split("\n").forEach((raw, i) => {
    let line = raw;
    if (inBlock) {
      const end = line.indexOf("*/");
      if (end < 0) return;
      line = line.slice(end + 2);
      inBlock = false;
    }
    const start = line.indexOf("/*");
    if (start >= 0 && line.indexOf("*/", start) < 0) {
      line = line.slice(0, start);
      inBlock = true;
    }
    line = line.replace(/\/\*.*?\*\//g, "");
    const comment = line.search(/(^|\s)\/\//);
    if (comment >= 0) line = line.slice(0, comment);
    for (const m of line.matchAll(LITERAL)) {
      if (!ALLOWED.has(`${file}:${m[2]}`)) found.push(`${file}:${i + 1}: ${m[0]}`);
    }
  });
  return found;
}

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (entry.isFile && path.endsWith(".ts")) yield path;
  }
}

Deno.test("no provider name appears as a string literal in generic modules", async () => {
  const found: string[] = [];
  let files = 0;
  for (const dir of GENERIC) {
    for await (const file of sources(dir)) {
      files++;
      found.push(...providerLiterals(file, await Deno.readTextFile(`${ROOT}${file}`)));
    }
  }
  assert.ok(files > 20, `scanned ${files} files`);
  assert.deepEqual(found, [], `provider names in generic modules:\n${found.join("\n")}`);
});

Deno.test("the scan finds literals in code and skips comments", () => {
  const text = [
    `const a = "openai";`,
    `// "anthropic" in a comment`,
    `/** "gemini" in a doc comment */`,
    `/*`,
    ` "bedrock" in a block`,
    `*/ if (t === 'mock') {}`,
    'const c = `azure`; // and "groq" after code',
    `const d = "openai_json"; // a wire format`,
  ].join("\n");
  assert.deepEqual(providerLiterals("x.ts", text), [
    `x.ts:1: "openai"`,
    `x.ts:6: 'mock'`,
    "x.ts:7: `azure`",
  ]);
});
