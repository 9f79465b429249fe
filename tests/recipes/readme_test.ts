/**
 * The README is true: every runnable code block in it (sh, js, ts, python, yaml) is marked as
 * a recipe, its text is exactly the file under examples/ that the recipe tests run, and every
 * recipe file is shown. A block that is deliberately not run says why (`<!-- not run: … -->`).
 * The quick start's curl block and the config examples are run here.
 */
import assert from "node:assert/strict";
import { runCli } from "../integration/daemon.ts";
import { EXAMPLES, recipeOutput, startEmbeddedDaemon } from "../helpers/recipes.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const RUNNABLE = new Set(["sh", "bash", "js", "mjs", "ts", "python", "py", "yaml", "yml"]);

interface Block {
  readonly line: number;
  readonly lang: string;
  readonly text: string;
  /** `recipe: <path>` or `not run: <reason>` from the comment just above, if any. */
  readonly marker: string | null;
}

function blocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const found: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.indexOf("```", i + 1);
    assert.ok(end > i, `README.md:${i + 1}: unclosed code block`);
    let j = i - 1;
    while (j >= 0 && lines[j]!.trim() === "") j--;
    const marker = /^<!-- (recipe: \S+|not run: .+) -->$/.exec(lines[j] ?? "")?.[1] ?? null;
    found.push({
      line: i + 1,
      lang: open[1]!,
      text: lines.slice(i + 1, end).join("\n") + "\n",
      marker,
    });
    i = end;
  }
  return found;
}

/** Deployment examples, validated by tests/deploy/ rather than shown as README recipes. */
const DEPLOY_EXAMPLES = new Set(["kubernetes/", "compose/", "systemd/"]);

async function recipeFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    if (e.isDirectory && DEPLOY_EXAMPLES.has(`${prefix}${e.name}/`)) continue;
    if (e.isDirectory) files.push(...await recipeFiles(`${dir}${e.name}/`, `${prefix}${e.name}/`));
    else if (/\.(mjs|py|sh|yaml)$/.test(e.name)) files.push(`examples/${prefix}${e.name}`);
  }
  return files.sort();
}

Deno.test("README: every runnable block is a recipe file, verbatim, and every recipe is shown", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const shown = new Set<string>();
  for (const b of blocks(readme)) {
    if (!RUNNABLE.has(b.lang)) continue;
    assert.ok(
      b.marker,
      `README.md:${b.line}: a ${b.lang} block needs <!-- recipe: examples/… --> (a file the tests run) or <!-- not run: why -->`,
    );
    if (!b.marker.startsWith("recipe: ")) continue;
    const path = b.marker.slice("recipe: ".length);
    const file = await Deno.readTextFile(`${ROOT}${path}`).catch(() => null);
    assert.ok(file !== null, `README.md:${b.line}: ${path} does not exist`);
    assert.equal(b.text, file, `README.md:${b.line}: the block differs from ${path}`);
    shown.add(path);
  }
  const files = await recipeFiles(EXAMPLES);
  assert.deepEqual(files.filter((f) => !shown.has(f)), [], "recipe files the README does not show");
  for (const f of files) {
    assert.ok(
      /(_tcp|_socket|degraded|quickstart)\.\w+$|^examples\/config\//.test(f),
      `${f}: name it *_tcp / *_socket (or add its own test)`,
    );
  }
});

Deno.test("README recipe: the quick start's curl over TCP and the socket", async () => {
  const d = await startEmbeddedDaemon();
  try {
    const out = await recipeOutput("quickstart.sh", d);
    // curl prints the JSON answer without a newline; the stream follows straight on.
    const cut = out.indexOf("data: ");
    const body = JSON.parse(out.slice(0, cut));
    const stream = out.slice(cut).split("\n");
    assert.equal(body.choices[0].message.content, "hi");
    assert.ok(stream.some((l) => l.startsWith("data: {")), out);
    assert.equal(stream.filter((l) => l.trim()).at(-1), "data: [DONE]");
  } finally {
    await d.stop();
  }
});

Deno.test("README recipe: every example config passes --check", async (t) => {
  for (const name of ["breaker", "bedrock", "full", "usage_cache", "responses", "sentinel"]) {
    await t.step(`examples/config/${name}.yaml`, async () => {
      const r = await runCli(["--check", "--config", `${EXAMPLES}config/${name}.yaml`], {
        OPENAI_API_KEY: "sk-recipe-check",
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /is valid/);
    });
  }
});

Deno.test("README recipe check: an unmarked block and a drifted block are both reported", () => {
  const md = [
    "<!-- recipe: examples/x.mjs -->",
    "",
    "```js",
    "a()",
    "```",
    "",
    "```python",
    "b()",
    "```",
    "```text",
    "not code",
    "```",
  ].join("\n");
  const found = blocks(md);
  assert.deepEqual(found.map((b) => [b.line, b.lang, b.marker]), [
    [3, "js", "recipe: examples/x.mjs"],
    [7, "python", null],
    [10, "text", null],
  ]);
  assert.equal(found[0]!.text, "a()\n");
});
