/**
 * Drive headless Chromium (Debian `chromium`) with playwright-core, in a child Deno: its
 * import probes `/proc/sys/fs/binfmt_misc`, which Deno grants only with --allow-all, and
 * the test runner itself must not run with that. The test sends a list of steps and gets
 * back what they read.
 *
 * Run as a script: `deno run -A tests/helpers/browser.ts '<steps JSON>'`; from tests,
 * call `runBrowser(steps)`.
 * @module
 */

export type BrowserStep =
  | { goto: string }
  | { viewport: { width: number; height: number } }
  /** Wait until this expression (run in the page) is truthy. */
  | { waitFor: string; timeoutMs?: number }
  /** The inner text of every element matching `selector`, as `key`. */
  | { texts: string; as: string }
  /** The value of an expression run in the page, as `key`. */
  | { evaluate: string; as: string }
  | { screenshot: string };

/** An expression as a function playwright can send to the page (it sends the source). */
function inPage(expression: string): () => unknown {
  return new Function(`return (${expression});`) as () => unknown;
}

export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** Run `steps` in one page; resolves with what the `as` steps read. */
export async function runBrowser(steps: BrowserStep[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      "-A",
      new URL(import.meta.url).pathname,
      JSON.stringify(steps),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`browser steps failed:\n${text}\n${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text);
}

if (import.meta.main) {
  const { chromium } = await import("playwright-core");
  const steps = JSON.parse(Deno.args[0] ?? "[]") as BrowserStep[];
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const results: Record<string, unknown> = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    for (const step of steps) {
      if ("goto" in step) await page.goto(step.goto);
      else if ("viewport" in step) await page.setViewportSize(step.viewport);
      else if ("waitFor" in step) {
        // As a function, not a string: a string is eval'd in the page, which its CSP forbids.
        await page.waitForFunction(inPage(step.waitFor), undefined, {
          timeout: step.timeoutMs ?? 20_000,
        });
      } else if ("texts" in step) results[step.as] = await page.locator(step.texts).allInnerTexts();
      else if ("evaluate" in step) results[step.as] = await page.evaluate(inPage(step.evaluate));
      else await page.screenshot({ path: step.screenshot, fullPage: true });
    }
  } finally {
    await browser.close();
  }
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(results)));
}
