/**
 * Butter's `plugins.ratelimit.trusted_proxies`: the client IP behind proxies the operator
 * trusts. Only when the connection's peer is in a trusted range are `X-Forwarded-For` (its
 * right-most entry that is not itself a trusted proxy) and then `X-Real-IP` believed; from
 * anyone else those headers are the client's own words and are ignored.
 * @module
 */

/** An address range: IPv4 held as IPv4-mapped IPv6, so one comparison serves both. */
export interface Cidr {
  readonly base: bigint;
  /** Prefix length over 128 bits. */
  readonly bits: number;
}

const V4_MAPPED = 0xffffn << 32n;

/** `a.b.c.d` or an IPv6 address (`::1`, `fe80::1%eth0`) as 128 bits; null when it is neither. */
export function parseIp(text: string): bigint | null {
  const s = text.trim();
  if (s.includes(":")) return parseV6(s.replace(/%.*$/, ""));
  const v4 = parseV4(s);
  return v4 === null ? null : V4_MAPPED | v4;
}

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function parseV6(s: string): bigint | null {
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) is two groups.
  let tail: bigint | null = null;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail = parseV4(s.slice(lastColon + 1));
    if (tail === null) return null;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0] as string);
  const rest = halves.length === 2 ? groups(halves[1] as string) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let n = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail !== null) n = (n & ~0xffffffffn) | tail;
  return n;
}

/** `10.0.0.0/8`, `fd00::/8`, or one address; null when it is none of these. */
export function parseCidr(text: string): Cidr | null {
  const [addr, len, extra] = text.trim().split("/");
  if (addr === undefined || extra !== undefined) return null;
  const ip = parseIp(addr);
  if (ip === null) return null;
  const v4 = !addr.includes(":");
  const max = v4 ? 32 : 128;
  if (len !== undefined && !/^\d{1,3}$/.test(len)) return null;
  const prefix = len === undefined ? max : Number(len);
  if (prefix > max) return null;
  const bits = v4 ? 96 + prefix : prefix;
  return { base: ip & maskOf(bits), bits };
}

function maskOf(bits: number): bigint {
  const all = (1n << 128n) - 1n;
  return bits === 0 ? 0n : (all << BigInt(128 - bits)) & all;
}

export function inCidrs(ip: bigint, cidrs: readonly Cidr[]): boolean {
  for (const c of cidrs) if ((ip & maskOf(c.bits)) === c.base) return true;
  return false;
}

/** A forwarded entry as an address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:443`, `::1`. */
function entryIp(entry: string): { text: string; ip: bigint } | null {
  let s = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracketed) s = bracketed[1] as string;
  else if (/^[\d.]+:\d+$/.test(s)) s = s.slice(0, s.indexOf(":"));
  const ip = parseIp(s);
  return ip === null ? null : { text: s, ip };
}

/**
 * The client IP for per-IP limits: `peer` unless it is a trusted proxy; then the right-most
 * `X-Forwarded-For` entry that is not a trusted proxy (all trusted: the left-most), else
 * `X-Real-IP`, else `peer`. An entry that is not an address ends the walk there.
 */
export function clientIp(
  peer: string | undefined,
  headers: Headers,
  trusted: readonly Cidr[],
): string | undefined {
  if (peer === undefined || trusted.length === 0) return peer;
  const peerIp = parseIp(peer);
  if (peerIp === null || !inCidrs(peerIp, trusted)) return peer;
  const xff = headers.get("x-forwarded-for");
  if (xff !== null && xff.trim() !== "") {
    const entries = xff.split(",");
    let leftmost: string | undefined;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entryIp(entries[i] as string);
      if (e === null) break;
      if (!inCidrs(e.ip, trusted)) return e.text;
      leftmost = e.text;
    }
    if (leftmost !== undefined) return leftmost;
  }
  const real = headers.get("x-real-ip");
  const r = real === null ? null : entryIp(real);
  return r?.text ?? peer;
}
