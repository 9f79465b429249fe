// The prompt-injection guard: a pre_http hook that scans every text a request carries and,
// on a match, blocks it (Butter's 400 body), logs it, or tags it. Config (all optional):
//   mode        block | log | tag                       (default block)
//   scan_roles  roles whose text is scanned, comma-separated or a JSON list
//               (default "user,tool"; add "system" to scan system prompts too)
//   categories  enable a subset, same format             (default: all nine)
import { configGet, inputLength, readInput, setOutput, warn } from "./extism";
import { roleBit, TextSink, Walker } from "./json";
import { compile, isEnabled, matchTokens, Pattern, tokenize } from "./scan";

const BLOCK_BODY =
  '{"error":{"message":"Request blocked: potential prompt injection detected","type":"invalid_request_error","code":"prompt_injection_detected"}}';

// Fake chat-template delimiters, matched on the raw text (ASCII case-insensitive): words
// alone cannot see them once punctuation is gone.
const DELIMITERS: string[] = [
  "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>",
  "<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>", "[inst]", "[/inst]", "<<sys>>",
  "<</sys>>", "</system>", "<system>", "[system]", "[/system]", "### system", "### instruction",
  "</s><s>", "{{system}}", "<|im_sep|>",
];

let ready = false;
let mode = "block";
let roles: i32 = 0;
let enabled: string[] = [];

function list(value: string | null, fallback: string): string[] {
  let v = value === null ? fallback : value.trim();
  // A JSON list is accepted too: ["user","tool"].
  if (v.startsWith("[")) v = v.replaceAll("[", "").replaceAll("]", "").replaceAll('"', "");
  const out: string[] = [];
  const parts = v.split(",");
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i].trim().toLowerCase();
    if (p.length > 0) out.push(p);
  }
  return out;
}

function setup(): void {
  if (ready) return;
  ready = true;
  compile();
  const m = configGet("mode");
  if (m !== null) mode = m.trim().toLowerCase();
  const names = list(configGet("scan_roles"), "user,tool");
  for (let i = 0; i < names.length; i++) roles |= roleBit(names[i]);
  enabled = list(configGet("categories"), "");
}

class Finding {
  category: string;
  pattern: string;
  constructor(category: string, pattern: string) {
    this.category = category;
    this.pattern = pattern;
  }
}

function lower(c: i32): i32 {
  return c >= 0x41 && c <= 0x5a ? c + 32 : c;
}

function delimiter(text: Uint8Array, len: i32): string | null {
  for (let i = 0; i < len; i++) {
    const c = <i32>unchecked(text[i]);
    if (c != 0x3c && c != 0x5b && c != 0x23 && c != 0x7b) continue;
    for (let d = 0; d < DELIMITERS.length; d++) {
      const del = unchecked(DELIMITERS[d]);
      const n = del.length;
      if (i + n > len || <i32>del.charCodeAt(0) != c) continue;
      let same = true;
      for (let k = 1; k < n; k++) {
        if (lower(<i32>unchecked(text[i + k])) != <i32>del.charCodeAt(k)) {
          same = false;
          break;
        }
      }
      if (same) return del;
    }
  }
  return null;
}

function scanText(text: Uint8Array, len: i32): Finding | null {
  if (isEnabled(enabled, "boundary_bypass")) {
    const d = delimiter(text, len);
    if (d !== null) return new Finding("boundary_bypass", "delimiter:" + d);
  }
  tokenize(text, len);
  const p: Pattern | null = matchTokens(enabled);
  if (p !== null) return new Finding(p.category, p.id);
  return null;
}

// ---- base64 / hex blobs, decoded once and scanned -----------------------------------------

const decoded = new TextSink();

function b64(c: i32): i32 {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41;
  if (c >= 0x61 && c <= 0x7a) return c - 0x47;
  if (c >= 0x30 && c <= 0x39) return c + 4;
  if (c == 0x2b || c == 0x2d) return 62;
  if (c == 0x2f || c == 0x5f) return 63;
  return -1;
}

function hexv(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  c = lower(c);
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** Mostly printable text (a decoded blob worth scanning, not binary noise). */
function printable(sink: TextSink): bool {
  if (sink.len < 8) return false;
  let ok = 0;
  for (let i = 0; i < sink.len; i++) {
    const c = <i32>unchecked(sink.buf[i]);
    if ((c >= 0x20 && c < 0x7f) || c == 0x0a || c == 0x09 || c >= 0x80) ok++;
  }
  return ok * 10 >= sink.len * 9;
}

function scanBlobs(text: Uint8Array, len: i32): Finding | null {
  let i = 0;
  while (i < len) {
    if (b64(<i32>unchecked(text[i])) < 0) {
      i++;
      continue;
    }
    let j = i;
    let hexOnly = true;
    while (j < len) {
      const c = <i32>unchecked(text[j]);
      if (b64(c) < 0) break;
      if (hexv(c) < 0) hexOnly = false;
      j++;
    }
    let end = j;
    while (end < len && unchecked(text[end]) == 0x3d) end++; // '=' padding
    const n = j - i;
    if (n >= 16) {
      decoded.reset();
      if (hexOnly && n % 2 == 0) {
        for (let k = i; k + 1 < j; k += 2) {
          decoded.push(<u8>((hexv(<i32>text[k]) << 4) | hexv(<i32>text[k + 1])));
        }
      } else {
        let acc = 0;
        let bits = 0;
        for (let k = i; k < j; k++) {
          acc = ((acc << 6) | b64(<i32>text[k])) & 0xffffff;
          bits += 6;
          if (bits >= 8) {
            bits -= 8;
            decoded.push(<u8>((acc >> bits) & 0xff));
          }
        }
      }
      if (printable(decoded)) {
        const f = scanText(decoded.buf, decoded.len);
        if (f !== null) {
          return new Finding(
            isEnabled(enabled, "encoding_attack") ? "encoding_attack" : f.category,
            "encoded:" + f.pattern,
          );
        }
      }
    }
    i = end > i ? end : i + 1;
  }
  return null;
}

// ---- the hook ------------------------------------------------------------------------------

const text = new TextSink();
const walker = new Walker(text);

function metadataJson(f: Finding): string {
  return '{"injection_category":"' + f.category + '","injection_pattern":"' + f.pattern + '"}';
}

let calls: i32 = 0;

export function pre_http(): i32 {
  setup();
  // Buffers are reused across calls; what a detection allocates is reclaimed now and then.
  if (++calls % 256 == 0) __collect();
  const input = readInput();
  if (!walker.collect(input, inputLength, roles) || text.len == 0) return 0;
  let f = scanText(text.buf, text.len);
  if (f === null && isEnabled(enabled, "encoding_attack")) f = scanBlobs(text.buf, text.len);
  if (f === null) return 0;
  const found = f;
  if (mode == "log") {
    warn(
      "prompt injection detected: category=" + found.category + " pattern=" + found.pattern,
    );
    setOutput('{"metadata":' + metadataJson(found) + "}");
  } else if (mode == "tag") {
    setOutput(
      '{"metadata":' + metadataJson(found) +
        ',"response_headers":{"x-pilotfish-injection":"' + found.category + '"}}',
    );
  } else {
    setOutput(
      '{"short_circuit":true,"short_circuit_status":400,"short_circuit_body":' + BLOCK_BODY +
        ',"metadata":' + metadataJson(found) + "}",
    );
  }
  return 0;
}
