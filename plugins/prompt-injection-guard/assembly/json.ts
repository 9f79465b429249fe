// Collect the text a request carries, from its JSON body, without building a tree: every
// string under a text-bearing key ("messages", "content", "text", "input", "system",
// "output", "parts", ...) whose role is scanned. Array content, Anthropic system and
// tool_result blocks, Gemini parts and function responses, Bedrock Converse tool results and
// the Responses API's input items are all walked.

/**
 * Ends each text part in the collected text: a byte no UTF-8 text holds, so no JSON string
 * (escapes included) can make one, where a newline could (`\u000a`).
 */
export const PART_END: u8 = 0xff;

/** Text collected for the scan: parts, each ended by `PART_END`. */
export class TextSink {
  buf: Uint8Array = new Uint8Array(4096);
  len: i32 = 0;

  reset(): void {
    this.len = 0;
  }

  push(b: u8): void {
    if (this.len == this.buf.length) this.grow(1);
    unchecked((this.buf[this.len++] = b));
  }

  /** Append `n` bytes from linear memory at `src` (a run of a JSON string, copied at once). */
  append(src: usize, n: i32): void {
    if (this.len + n > this.buf.length) this.grow(n);
    memory.copy(this.buf.dataStart + <usize>this.len, src, <usize>n);
    this.len += n;
  }

  grow(extra: i32): void {
    let size = this.buf.length * 2;
    while (size < this.len + extra) size *= 2;
    const next = new Uint8Array(size);
    memory.copy(next.dataStart, this.buf.dataStart, <usize>this.len);
    this.buf = next;
  }

  pushUtf8(cp: i32): void {
    if (cp < 0x80) this.push(<u8>cp);
    else if (cp < 0x800) {
      this.push(<u8>(0xc0 | (cp >> 6)));
      this.push(<u8>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      this.push(<u8>(0xe0 | (cp >> 12)));
      this.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
      this.push(<u8>(0x80 | (cp & 0x3f)));
    } else {
      this.push(<u8>(0xf0 | (cp >> 18)));
      this.push(<u8>(0x80 | ((cp >> 12) & 0x3f)));
      this.push(<u8>(0x80 | ((cp >> 6) & 0x3f)));
      this.push(<u8>(0x80 | (cp & 0x3f)));
    }
  }
}

const TEXT_KEYS: string[] = [
  "messages", "content", "text", "input", "prompt", "contents", "parts", "output",
  "query", "system", "instructions", "input_text",
  // Documents and files: a document's source, title and context; a chat `file` part.
  "source", "title", "context", "file",
  // Tool calls a turn made (OpenAI `tool_calls[].function`, legacy `function_call`, Gemini
  // `functionCall`) and a refusal's text: the model reads them back on the next turn.
  "tool_calls", "function_call", "function", "functionCall", "refusal",
  // Anthropic Message Batches: each request's `params` is a Messages body.
  "requests", "params",
];

function startsWith(sink: TextSink, prefix: string): bool {
  const n = prefix.length;
  if (sink.len < n) return false;
  for (let i = 0; i < n; i++) {
    if (<i32>unchecked(sink.buf[i]) != <i32>prefix.charCodeAt(i)) return false;
  }
  return true;
}

/** Roles as bits, so a role is passed down without a string. */
export const ROLE_USER: i32 = 1;
export const ROLE_ASSISTANT: i32 = 2;
export const ROLE_SYSTEM: i32 = 4;
export const ROLE_TOOL: i32 = 8;
export const ROLE_OTHER: i32 = 16;
/** Role not known yet: collect, decide at the end of the object. */
export const ROLE_ANY: i32 = 31;

export function roleBit(name: string): i32 {
  // Butter's config.example.yaml: "all" for all roles.
  if (name == "all" || name == "*") return ROLE_ANY;
  if (name == "user" || name == "human") return ROLE_USER;
  if (name == "assistant" || name == "model") return ROLE_ASSISTANT;
  if (name == "system" || name == "developer") return ROLE_SYSTEM;
  if (name == "tool" || name == "function") return ROLE_TOOL;
  return ROLE_OTHER;
}

function is(sink: TextSink, word: string): bool {
  const n = word.length;
  if (sink.len != n) return false;
  for (let i = 0; i < n; i++) {
    if (<i32>unchecked(sink.buf[i]) != <i32>word.charCodeAt(i)) return false;
  }
  return true;
}

function sinkRole(sink: TextSink): i32 {
  if (is(sink, "user") || is(sink, "human")) return ROLE_USER;
  if (is(sink, "assistant") || is(sink, "model")) return ROLE_ASSISTANT;
  if (is(sink, "system") || is(sink, "developer")) return ROLE_SYSTEM;
  if (is(sink, "tool") || is(sink, "function")) return ROLE_TOOL;
  return ROLE_OTHER;
}

const QUOTES = i8x16.splat(0x22);
const BACKSLASHES = i8x16.splat(0x5c);

export class Walker {
  src: Uint8Array = new Uint8Array(0);
  end: i32 = 0;
  pos: i32 = 0;
  roles: i32 = 0;
  out: TextSink;
  key: TextSink = new TextSink();
  /** Kept tool text, as `[start, end)` pairs in order (`keep`, `drop`). */
  spans: Int32Array = new Int32Array(64);
  spanCount: i32 = 0;

  constructor(out: TextSink) {
    this.out = out;
  }

  /** Collect the texts of the input's `body` (the top-level object of Butter's input). */
  collect(src: Uint8Array, end: i32, roles: i32): bool {
    this.src = src;
    this.end = end;
    this.pos = 0;
    this.roles = roles;
    this.spanCount = 0;
    this.out.reset();
    this.ws();
    if (this.peek() != 0x7b) return false;
    this.pos++;
    while (true) {
      this.ws();
      const c = this.peek();
      if (c == 0x7d) return true;
      if (c == 0x2c) {
        this.pos++;
        continue;
      }
      if (c != 0x22) return false;
      this.readKey();
      this.ws();
      if (this.peek() != 0x3a) return false;
      this.pos++;
      this.ws();
      if (is(this.key, "body")) {
        if (this.peek() == 0x7b) this.object(ROLE_USER, true);
        else this.value(ROLE_USER);
        return true;
      }
      this.skip();
      if (this.pos >= this.end) return false;
    }
  }

  peek(): u8 {
    return this.pos < this.end ? unchecked(this.src[this.pos]) : 0;
  }

  ws(): void {
    while (this.pos < this.end) {
      const c = unchecked(this.src[this.pos]);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) return;
      this.pos++;
    }
  }

  value(role: i32): void {
    const c = this.peek();
    if (c == 0x22) {
      if ((this.roles & role) != 0) {
        this.str(this.out);
        this.out.push(PART_END);
      } else this.skipString();
    } else if (c == 0x7b) this.object(role);
    else if (c == 0x5b) {
      this.pos++;
      while (true) {
        this.ws();
        const d = this.peek();
        if (d == 0x5d || d == 0) {
          this.pos++;
          return;
        }
        if (d == 0x2c) {
          this.pos++;
          continue;
        }
        this.value(role);
      }
    } else this.skip();
  }

  /**
   * One pass over an object. Its "role" (or a tool_result/function_call_output "type")
   * decides whether its text is scanned, but may come after the text: text read before it
   * is collected, and dropped again at the end if the object's role is not scanned. The
   * request body itself (`root`) has no role: its own strings (a prompt, a Responses input)
   * are the user's, and what its messages kept by their own roles stays kept.
   */
  object(inherited: i32, root: bool = false): void {
    const mark = this.out.len;
    let role = inherited;
    let known = false;
    let toolish = false;
    // A `data` string is text only under a text/* `media_type` (base64 images are not).
    let textMedia = false;
    let mediaSeen = false;
    let dataAt = -1;
    this.pos++;
    while (true) {
      this.ws();
      const c = this.peek();
      if (c == 0x7d || c == 0) {
        this.pos++;
        break;
      }
      if (c == 0x2c) {
        this.pos++;
        continue;
      }
      this.readKey();
      // Tool definitions (OpenAI `tools` and legacy `functions`, Anthropic's, Gemini's
      // `functionDeclarations`, the Responses API's, Bedrock Converse's `toolConfig`): their
      // descriptions are text a model reads and a third party (an MCP server) may write,
      // scanned as tool text.
      if (is(this.key, "tools") || is(this.key, "functions") || is(this.key, "toolConfig")) {
        this.ws();
        this.pos++; // ':'
        this.ws();
        if ((this.roles & ROLE_TOOL) != 0) this.definitions();
        else this.skip();
        continue;
      }
      // Tool output in native shapes whose strings sit under arbitrary keys: Gemini's
      // `functionResponse` (its `response` object) and Bedrock Converse's `toolResult` (its
      // `content[].text` and `content[].json`). Every string in them is tool text.
      if (is(this.key, "functionResponse") || is(this.key, "toolResult")) {
        this.ws();
        this.pos++; // ':'
        this.ws();
        if ((this.roles & ROLE_TOOL) != 0) this.strings();
        else this.skip();
        toolish = true;
        continue;
      }
      const isRole = is(this.key, "role");
      const isType = !isRole && is(this.key, "type");
      // Gemini's `systemInstruction` (`system_instruction` in its REST examples) too.
      const sys = !isRole && !isType &&
        (is(this.key, "system") || is(this.key, "instructions") ||
          is(this.key, "systemInstruction") || is(this.key, "system_instruction"));
      let walk = sys;
      if (!isRole && !isType && !sys) {
        for (let i = 0; i < TEXT_KEYS.length; i++) {
          if (is(this.key, unchecked(TEXT_KEYS[i]))) {
            walk = true;
            break;
          }
        }
      }
      // A tool call's arguments: a JSON string, or an object of any keys (Anthropic and
      // Converse `tool_use`/`toolUse` `input`, Gemini `args`): every string in it is text.
      const args = !isRole && !isType &&
        (is(this.key, "arguments") || is(this.key, "args") || is(this.key, "input"));
      this.ws();
      this.pos++; // ':'
      this.ws();
      const isMedia = !isRole && !isType && !walk && is(this.key, "media_type");
      const isData = !isRole && !isType && !walk && !isMedia && is(this.key, "data");
      const isFileData = !isRole && !isType && !walk && !isMedia && !isData &&
        is(this.key, "file_data");
      if ((isMedia || isData || isFileData) && this.peek() == 0x22) {
        if (isMedia) {
          this.key.reset();
          this.str(this.key);
          textMedia = startsWith(this.key, "text/");
          mediaSeen = true;
        } else if (isFileData) {
          // A file part's data URL says its type itself: only text is read.
          if (this.rawStartsWith("data:text/")) {
            this.str(this.out);
            this.out.push(PART_END);
          } else this.skipString();
        } else if (mediaSeen && !textMedia) {
          this.skipString(); // an image's base64: never copied
        } else {
          // Its media type may come after it: where it is, to read it then if it is text.
          dataAt = this.pos;
          this.skipString();
        }
      } else if ((isRole || isType) && this.peek() == 0x22) {
        this.key.reset();
        this.str(this.key);
        if (isRole) {
          role = sinkRole(this.key);
          known = true;
        } else {
          toolish = is(this.key, "tool_result") || is(this.key, "function_call_output") ||
            is(this.key, "tool");
        }
      } else if (args && this.peek() == 0x7b) {
        this.strings();
      } else if (walk || args) {
        const r = sys ? ROLE_SYSTEM : toolish ? ROLE_TOOL : known || root ? role : ROLE_ANY;
        this.value(r);
      } else this.skip();
    }
    if (dataAt >= 0 && textMedia) {
      const after = this.pos;
      this.pos = dataAt;
      this.str(this.out);
      this.out.push(PART_END);
      this.pos = after;
    }
    const final = toolish ? ROLE_TOOL : role;
    if (!root && (this.roles & final) == 0) this.drop(mark);
    else if (final == ROLE_TOOL && this.out.len > mark) this.keep(mark);
  }

  /**
   * Tool text kept at `[mark, out.len)`: it survives an enclosing message dropped for its own
   * role (a tool result inside a `user` message when `user` is not scanned).
   */
  keep(mark: i32): void {
    while (this.spanCount > 0 && unchecked(this.spans[this.spanCount - 2]) >= mark) {
      this.spanCount -= 2;
    }
    if (this.spanCount + 2 > this.spans.length) {
      const next = new Int32Array(this.spans.length * 2);
      next.set(this.spans);
      this.spans = next;
    }
    unchecked((this.spans[this.spanCount++] = mark));
    unchecked((this.spans[this.spanCount++] = this.out.len));
  }

  /** Drop the text collected since `mark`, but the tool text kept in it. */
  drop(mark: i32): void {
    let w = mark;
    for (let i = 0; i < this.spanCount; i += 2) {
      const start = unchecked(this.spans[i]);
      if (start < mark) continue;
      const n = unchecked(this.spans[i + 1]) - start;
      const base = this.out.buf.dataStart;
      if (start != w) memory.copy(base + <usize>w, base + <usize>start, <usize>n);
      unchecked((this.spans[i] = w));
      unchecked((this.spans[i + 1] = w + n));
      w += n;
    }
    this.out.len = w;
  }

  /**
   * Tool definitions: every `description` string at any depth (a tool's, and its parameters'
   * in the JSON schema, whose property names are arbitrary keys); nothing else is text.
   */
  definitions(): void {
    const c = this.peek();
    if (c == 0x5b) {
      this.pos++;
      while (true) {
        this.ws();
        const d = this.peek();
        if (d == 0x5d || d == 0) {
          this.pos++;
          return;
        }
        if (d == 0x2c) this.pos++;
        else this.definitions();
      }
    }
    if (c != 0x7b) {
      this.skip();
      return;
    }
    this.pos++;
    while (true) {
      this.ws();
      const d = this.peek();
      if (d == 0x7d || d == 0) {
        this.pos++;
        return;
      }
      if (d == 0x2c) {
        this.pos++;
        continue;
      }
      this.readKey();
      this.ws();
      this.pos++; // ':'
      this.ws();
      if (this.peek() == 0x22 && is(this.key, "description")) {
        this.str(this.out);
        this.out.push(PART_END);
      } else this.definitions();
    }
  }

  /** Every string value at any depth (not the keys), each a text part. */
  strings(): void {
    const c = this.peek();
    if (c == 0x22) {
      this.str(this.out);
      this.out.push(PART_END);
      return;
    }
    if (c != 0x7b && c != 0x5b) {
      this.skip();
      return;
    }
    const object = c == 0x7b;
    this.pos++;
    while (true) {
      this.ws();
      const d = this.peek();
      if (d == 0x7d || d == 0x5d || d == 0) {
        this.pos++;
        return;
      }
      if (d == 0x2c) {
        this.pos++;
        continue;
      }
      if (object) {
        this.skipString(); // the key
        this.ws();
        this.pos++; // ':'
        this.ws();
      }
      this.strings();
    }
  }

  /** The string at `pos` starts with `prefix` (compared as written, escapes and all). */
  rawStartsWith(prefix: string): bool {
    const n = prefix.length;
    if (this.pos + 1 + n > this.end) return false;
    for (let i = 0; i < n; i++) {
      if (<i32>unchecked(this.src[this.pos + 1 + i]) != <i32>prefix.charCodeAt(i)) return false;
    }
    return true;
  }

  readKey(): void {
    this.key.reset();
    this.str(this.key);
  }

  hex(): i32 {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = <i32>this.peek();
      this.pos++;
      let d = -1;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      if (d < 0) return 0xfffd;
      v = (v << 4) | d;
    }
    return v;
  }

  /** A JSON string's content, unescaped, into `sink`. */
  str(sink: TextSink): void {
    this.pos++; // opening quote
    const src = this.src;
    const n = this.end; // not the buffer: past the input are the bytes of an older one
    const base = src.dataStart;
    while (this.pos < n) {
      // The run up to the next quote or backslash goes in with one copy; it is found 16
      // bytes at a time.
      let run = this.pos;
      while (run + 16 <= n) {
        const v = v128.load(base + <usize>run);
        const hits = i8x16.bitmask(v128.or(i8x16.eq(v, QUOTES), i8x16.eq(v, BACKSLASHES)));
        if (hits != 0) {
          run += ctz(hits);
          break;
        }
        run += 16;
      }
      while (run < n) {
        const d = load<u8>(base + <usize>run);
        if (d == 0x22 || d == 0x5c) break;
        run++;
      }
      if (run > this.pos) {
        sink.append(base + <usize>this.pos, run - this.pos);
        this.pos = run;
        if (run >= n) return;
      }
      const c = unchecked(src[this.pos++]);
      if (c == 0x22) return;
      const e = this.peek();
      this.pos++;
      if (e == 0x6e || e == 0x72 || e == 0x74) sink.push(0x20);
      else if (e == 0x62 || e == 0x66) sink.push(0x20);
      else if (e == 0x75) {
        let cp = this.hex();
        if (cp >= 0xd800 && cp < 0xdc00 && this.peek() == 0x5c) {
          const save = this.pos;
          this.pos++;
          if (this.peek() == 0x75) {
            this.pos++;
            const lo = this.hex();
            if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            else this.pos = save;
          } else this.pos = save;
        }
        sink.pushUtf8(cp);
      } else sink.push(e);
    }
  }

  skipString(): void {
    this.pos++;
    const src = this.src;
    const n = this.end;
    while (this.pos < n) {
      const c = unchecked(src[this.pos++]);
      if (c == 0x22) return;
      if (c == 0x5c) this.pos++;
    }
  }

  /** Skip one value of any kind. */
  skip(): void {
    const c = this.peek();
    if (c == 0x22) {
      this.skipString();
      return;
    }
    if (c == 0x7b || c == 0x5b) {
      let depth = 0;
      const n = this.end;
      while (this.pos < n) {
        const d = unchecked(this.src[this.pos]);
        if (d == 0x22) {
          this.skipString();
          continue;
        }
        this.pos++;
        if (d == 0x7b || d == 0x5b) depth++;
        else if (d == 0x7d || d == 0x5d) {
          if (--depth == 0) return;
        }
      }
      return;
    }
    while (this.pos < this.end) {
      const d = unchecked(this.src[this.pos]);
      if (d == 0x2c || d == 0x7d || d == 0x5d) return;
      this.pos++;
    }
  }
}
