// The smallest useful plugin, and the template to copy: on pre_llm it tags the request
// with a metadata entry (`example: <config "tag", default "seen">`), which later stages
// see and the access log records. Build with `deno task build:plugins`.
import { configGet, setOutput } from "./extism";

export function pre_llm(): i32 {
  const tag = configGet("tag");
  setOutput('{"metadata":{"example":"' + (tag === null ? "seen" : escape(tag)) + '"}}');
  return 0;
}

/** A JSON string body: quotes, backslashes and control characters escaped. */
function escape(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20) out += " ";
    else out += String.fromCharCode(c);
  }
  return out;
}
