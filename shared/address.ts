/**
 * IP addresses: the one place that parses them, names their family, writes their canonical form and says which
 * may be granted. Everything else (client, config, policy, firewall backends, wire format) calls this module.
 *
 * - Syntax is strict ({@link isStrictIp}): IPv4 is four decimal parts (ipaddr.js alone also takes `010.0.0.1` as
 *   octal 8.0.0.1 and `1` as 0.0.0.1, which must never silently become a firewall address); IPv6 is what
 *   `node:net` accepts, without a zone unless asked, with a dotted tail only when that tail is strict IPv4.
 * - Canonical text: IPv4 dotted quad; IPv6 in RFC 5952 §4 form (lower case, longest run of zeros compressed,
 *   no dotted tail). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) is the IPv4 address it
 *   maps: a dual-stack socket reports IPv4 senders that way, and the firewall matches them as IPv4.
 * - Grant identity ({@link grantKeyString}): family, canonical address and access, the same string for the grant
 *   manager and every backend.
 * @module
 */
import type * as net from 'node:net';
import ipaddr from 'ipaddr.js';
import { type Access, formatAccess } from './access.js';

export type Family = 4 | 6;

/** A parsed address in canonical form. */
export interface IpAddress {
  readonly family: Family;
  /** Canonical text (see the module comment). */
  readonly text: string;
  readonly ip: ipaddr.IPv4 | ipaddr.IPv6;
}

/** A CIDR block with no host bits set. */
export interface Cidr {
  /** Canonical text, always with a prefix length (`203.0.113.0/24`, `2001:db8::/32`). */
  readonly text: string;
  readonly family: Family;
  readonly network: ipaddr.IPv4 | ipaddr.IPv6;
  readonly prefix: number;
}

const V6_CHARS = /^[0-9A-Fa-f:.]+$/;

/** Node's own IPv4 expression (lib/internal/net.js): four decimal parts 0-255, no leading zeros. */
const V4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const NODE_IPV4 = new RegExp(`^(?:${V4_PART}\\.){3}${V4_PART}$`);

/**
 * `node:net` `isIP`: 4, 6 or 0, as Node reads the text (an IPv6 zone is accepted). An IPv4 text is answered with
 * Node's own IPv4 expression, without loading `node:net` (whose loading and IPv6 expression cost a fresh process
 * ~10 ms) or ipaddr.js (client cold start, docs/benchmarks.md); test/shared/address.test.ts compares the two. Only
 * a text with a colon can be IPv6.
 */
export function ipFamilyOf(text: string): 0 | 4 | 6 {
  if (NODE_IPV4.test(text)) return 4;
  if (!text.includes(':')) return 0;
  return (process.getBuiltinModule('node:net') as typeof net).isIPv6(text) ? 6 : 0;
}

/** Strict syntax check of an address without a zone. Pure syntax: no range is refused here. */
export function isStrictIp(text: string): boolean {
  if (typeof text !== 'string' || text.length > 45) return false;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return true;
  if (!V6_CHARS.test(text) || ipFamilyOf(text) !== 6) return false;
  return !text.includes('.') || ipaddr.IPv4.isValidFourPartDecimal(text.slice(text.lastIndexOf(':') + 1));
}

function fromParsed(ip: ipaddr.IPv4 | ipaddr.IPv6): IpAddress {
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    const v4 = (ip as ipaddr.IPv6).toIPv4Address();
    return { family: 4, text: v4.toString(), ip: v4 };
  }
  // ipaddr.js 2.x: IPv6.toString() is the RFC 5952 form
  return { family: ip.kind() === 'ipv4' ? 4 : 6, text: ip.toString(), ip };
}

/**
 * Parse an address. `zone: 'strip'` drops an IPv6 zone id (`fe80::1%eth0`, as a socket may report a link-local
 * sender: the zone is local to this host); by default a zone makes the text invalid. Returns undefined when the
 * text is not a strict address.
 */
export function parseIp(text: string, opts: { readonly zone?: 'strip' | 'refuse' } = {}): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  let bare = text;
  const pct = text.indexOf('%');
  if (pct >= 0) {
    if (opts.zone !== 'strip' || !text.includes(':')) return undefined;
    bare = text.slice(0, pct);
  }
  if (!isStrictIp(bare)) return undefined;
  return fromParsed(ipaddr.parse(dottedTailToHex(bare)));
}

/**
 * `::10.0.0.1` → `::a00:1`. ipaddr.js reads every IPv6 text with a dotted tail as IPv4-mapped (`::10.0.0.1` came
 * back as `::ffff:a00:1`), so the tail is rewritten as two hex groups first. Input is strict already.
 */
function dottedTailToHex(text: string): string {
  if (!text.includes(':') || !text.includes('.')) return text;
  const at = text.lastIndexOf(':');
  const o = text
    .slice(at + 1)
    .split('.')
    .map(Number);
  const g = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
  return `${text.slice(0, at + 1)}${g(o[0] ?? 0, o[1] ?? 0)}:${g(o[2] ?? 0, o[3] ?? 0)}`;
}

/** Canonical text of an address, or undefined. */
export function canonicalIp(text: string): string | undefined {
  return parseIp(text)?.text;
}

/** An address of exactly this family (an IPv4-mapped IPv6 address is family 4), or undefined. */
export function parseIpOfFamily(family: Family, text: unknown): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  const a = parseIp(text);
  return a !== undefined && a.family === family ? a : undefined;
}

/** 4 or 16 network-order bytes. */
export function ipFromBytes(bytes: Uint8Array): IpAddress | undefined {
  if (bytes.length !== 4 && bytes.length !== 16) return undefined;
  return fromParsed(ipaddr.fromByteArray(Array.from(bytes)));
}

export function ipToBytes(a: IpAddress): Uint8Array {
  return new Uint8Array(a.ip.toByteArray());
}

/** `1.2.3.4:22` or `[2001:db8::1]:22`. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Why an address must never be granted, or undefined when it may be. A grant is for one host that sends
 * packets: never the unspecified address, a loopback address, a multicast group or the IPv4 limited broadcast
 * (RFC 919); nor an IPv4-compatible, reserved or other special-purpose form that no host sends from.
 */
export function ungrantableReason(a: IpAddress): string | undefined {
  const range = a.ip.range();
  switch (range) {
    case 'unspecified':
      return 'the unspecified address';
    case 'loopback':
      return 'a loopback address';
    case 'multicast':
      return 'a multicast address';
    case 'broadcast':
      return 'the broadcast address';
    default:
      break;
  }
  if (a.family === 4 && (a.ip as ipaddr.IPv4).octets[0] === 0) return 'in 0.0.0.0/8 ("this network")';
  if (a.family === 6 && a.text.startsWith('::') && a.text !== '::' && !a.text.startsWith('::ffff:')) {
    return 'an IPv4-compatible IPv6 address (deprecated, RFC 4291 §2.5.5.1)';
  }
  return undefined;
}

/**
 * Parse a CIDR block; a bare address is a /32 or /128. Host bits must be zero (`10.1.2.3/8` is refused: it
 * would silently mean 10.0.0.0/8), IPv4-mapped prefixes are refused (write the IPv4 form), zones are refused.
 */
export function parseCidr(text: string): { ok: true; cidr: Cidr } | { ok: false; reason: string } {
  const bad = {
    ok: false as const,
    reason: `"${text}" is not an address or CIDR block like "203.0.113.0/24" or "2001:db8::/32"`,
  };
  if (typeof text !== 'string') return bad;
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const lenText = slash >= 0 ? text.slice(slash + 1) : undefined;
  if (!isStrictIp(addrText)) return bad;
  const hexText = dottedTailToHex(addrText);
  const ip = ipaddr.parse(hexText);
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) {
    return { ok: false, reason: `"${text}" is an IPv4-mapped IPv6 block; write it as IPv4` };
  }
  const family: Family = ip.kind() === 'ipv4' ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  if (lenText !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return bad;
  const prefix = lenText === undefined ? max : Number(lenText);
  if (prefix > max) return { ok: false, reason: `"${text}": the prefix length must be 0-${max}` };
  const network =
    family === 4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${hexText}/${prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${hexText}/${prefix}`);
  const canonical = network.toString();
  if (canonical !== fromParsed(ip).text) {
    return { ok: false, reason: `"${text}" has host bits set; the block is ${canonical}/${prefix}` };
  }
  return { ok: true, cidr: { text: `${canonical}/${prefix}`, family, network, prefix } };
}

export function inCidr(a: IpAddress, c: Cidr): boolean {
  if (a.family !== c.family) return false;
  return a.ip.match(c.network as ipaddr.IPv4 & ipaddr.IPv6, c.prefix);
}

export function inAnyCidr(a: IpAddress, list: readonly Cidr[]): boolean {
  return list.some((c) => inCidr(a, c));
}

/**
 * IPv4 directed-broadcast addresses of this host's own subnets, from `os.networkInterfaces()` output (passed in,
 * so this stays pure). A grant for one of them would let a knock aim at a whole subnet.
 */
export function subnetBroadcasts(
  ifaces: Readonly<
    Record<
      string,
      readonly { family: string | number; address: string; netmask: string; cidr?: string | null }[] | undefined
    >
  >,
): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(ifaces)) {
    for (const i of list ?? []) {
      if (!(i.family === 'IPv4' || i.family === 4) || !ipaddr.IPv4.isValidFourPartDecimal(i.address)) continue;
      const prefix = ipaddr.IPv4.parse(i.netmask).prefixLengthFromSubnetMask();
      if (prefix === null || prefix >= 31) continue; // /31 and /32 have no broadcast address (RFC 3021)
      out.add(ipaddr.IPv4.broadcastAddressFromCIDR(`${i.address}/${prefix}`).toString());
    }
  }
  return out;
}

/** Longest prefix length of a family: 32 or 128 (a "prefix" of that length is one host). */
export function hostPrefix(family: Family): 32 | 128 {
  return family === 4 ? 32 : 128;
}

/**
 * The network of `a` at `/len` (host bits cleared), as a {@link Cidr}; undefined when `len` is not 0..32 / 0..128.
 * `networkOf(10.1.2.3, 24)` → `10.1.2.0/24`.
 */
export function networkOf(a: IpAddress, len: number): Cidr | undefined {
  const max = hostPrefix(a.family);
  if (!Number.isInteger(len) || len < 0 || len > max) return undefined;
  const network =
    a.family === 4
      ? ipaddr.IPv4.networkAddressFromCIDR(`${a.text}/${len}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${a.text}/${len}`);
  return { text: `${network.toString()}/${len}`, family: a.family, network, prefix: len };
}

/** Does `outer` contain every address of `inner`? */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  return inner.network.match(outer.network as ipaddr.IPv4 & ipaddr.IPv6, outer.prefix);
}

/** Do two blocks share an address? (For CIDR blocks: does one contain the other.) */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/**
 * The special-purpose blocks no prefix grant may touch: a prefix that overlaps one of them would name addresses
 * {@link ungrantableReason} refuses one by one (unspecified, loopback, multicast, limited broadcast, 0.0.0.0/8,
 * IPv4-compatible IPv6). RFC 6890 / RFC 4291.
 */
const SPECIAL_BLOCKS: readonly [string, string][] = [
  ['0.0.0.0/8', 'in 0.0.0.0/8 ("this network")'],
  ['127.0.0.0/8', 'a loopback address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['255.255.255.255/32', 'the broadcast address'],
  ['::/96', 'the unspecified, loopback or an IPv4-compatible IPv6 address'],
  ['ff00::/8', 'a multicast address'],
];
/** The blocks above, parsed on first use (parsing the IPv6 ones at import would load `node:net`: see ipFamilyOf). */
let special: readonly { cidr: Cidr; what: string }[] | undefined;
function specialBlocks(): readonly { cidr: Cidr; what: string }[] {
  special ??= SPECIAL_BLOCKS.map(([t, what]) => {
    const r = parseCidr(t);
    if (!r.ok) throw new Error(`bad built-in block ${t}`);
    return { cidr: r.cidr, what };
  });
  return special;
}

/**
 * Why a prefix must never be granted, or undefined when it may be: it contains (or lies inside) one of the
 * special-purpose blocks above. A /32 or /128 is judged like its address ({@link ungrantableReason}).
 */
export function ungrantablePrefixReason(c: Cidr): string | undefined {
  if (c.prefix === hostPrefix(c.family)) {
    const a = parseIp(c.network.toString());
    return a === undefined ? 'not an address' : ungrantableReason(a);
  }
  const hit = specialBlocks().find((s) => cidrsOverlap(s.cidr, c));
  return hit === undefined ? undefined : `it contains ${hit.what} (${hit.cidr.text})`;
}

/**
 * The identity of a grant: one address or one prefix, one access. A prefix grant (`prefix` set, shorter than 32 or
 * 128) names its network address (host bits zero) in `address`; a grant without `prefix` is for one host.
 */
export interface GrantKey {
  readonly family: Family;
  /** Canonical address text: the host, or the network address of the prefix. */
  readonly address: string;
  /** Prefix length of a prefix grant (IPv4 1..31, IPv6 1..127); absent for a one-host grant. */
  readonly prefix?: number | undefined;
  readonly access: Access;
}

/** `address` or `network/len`: the text of the grant's source (what iptables `-s` and nft print, without /32). */
export function grantSource(k: Pick<GrantKey, 'address' | 'prefix'>): string {
  return k.prefix === undefined ? k.address : `${k.address}/${k.prefix}`;
}

/**
 * `family|address|proto/port` (one host) or `family|network/len|proto/port` (a prefix): identity of a grant
 * regardless of expiry and owner.
 */
export function grantKeyString(k: GrantKey): string {
  return `${k.family}|${grantSource(k)}|${formatAccess(k.access)}`;
}
